#include "backend_registry.h"

#include <memory>
#include <mutex>
#include <regex>

namespace crunet::addon {

Backend& cpu_backend() {
  static std::once_flag once;
  static std::unique_ptr<Backend> cpu;
  std::call_once(once, [] { cpu = make_cpu_backend(); });
  return *cpu;
}

Backend& backend_for(Napi::Env env, const std::string& device) {
  if (device == "cpu") return cpu_backend();
  if (std::regex_match(device, std::regex("cuda(:[0-9]+)?")))
    throw Napi::Error::New(env, "device '" + device +
                                    "': this build of crunet has no CUDA backend (the native/cuda library was not "
                                    "built); use device 'cpu'");
  throw Napi::Error::New(env, "device '" + device + "' is not known; valid devices: 'cpu', 'cuda', 'cuda:N'");
}

}  // namespace crunet::addon
