#include "backend_registry.h"

#include <dlfcn.h>
#include <sys/stat.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <regex>
#include <tuple>

#include "engine_thread.h"

namespace crunet::addon {
namespace {

const char* kLibraryName = "libcrunet_cuda.so";

std::string addon_dir() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<const void*>(&addon_dir), &info) && info.dli_fname) {
    std::string p = info.dli_fname;
    auto slash = p.rfind('/');
    return slash == std::string::npos ? "." : p.substr(0, slash);
  }
  return ".";
}

// The library path, and whether it came from CRUNET_CUDA_LIBRARY.
std::pair<std::string, bool> library_path() {
  const char* env = std::getenv("CRUNET_CUDA_LIBRARY");
  if (env && *env) return {env, true};
  return {addon_dir() + "/" + kLibraryName, false};
}

bool file_exists(const std::string& p) {
  struct stat st {};
  return stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::mutex& mu() {
  static std::mutex m;
  return m;
}

// Successfully loaded libraries by path; never unloaded (their backends live until the process exits).
std::map<std::string, const CrunetCudaApiV1*>& loaded() {
  static auto* m = new std::map<std::string, const CrunetCudaApiV1*>;
  return *m;
}

// Loads the library (caller holds mu()); nullptr with `why` set on failure, after unloading it.
const CrunetCudaApiV1* load_locked(std::string& why) {
  auto [path, from_env] = library_path();
  auto it = loaded().find(path);
  if (it != loaded().end()) return it->second;
  if (!file_exists(path)) {
    if (from_env) why = "CRUNET_CUDA_LIBRARY=" + path + ": no such file";
    else
      why = "this build of crunet has no CUDA backend (" + path +
            " not found: the CUDA library was not built; install CUDA, cuBLAS and cuDNN 9 "
            "(scripts/install-cuda.sh) and run 'npm run build:native')";
    return nullptr;
  }
  dlerror();
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* e = dlerror();
    why = "cannot load " + path + ": " + (e ? e : "dlopen failed");
#ifdef CRUNET_CUDA_LIBRARY_DIRS
    if (!from_env)
      why += std::string(" (it looks for its CUDA libraries in ") + CRUNET_CUDA_LIBRARY_DIRS +
             ", then LD_LIBRARY_PATH and the system paths)";
#endif
    return nullptr;
  }
  auto entry = reinterpret_cast<CrunetCudaEntryFn>(dlsym(h, CRUNET_CUDA_ENTRY_SYMBOL));
  const CrunetCudaApiV1* api = entry ? entry() : nullptr;
  std::string bad;
  if (!entry) bad = std::string("it has no ") + CRUNET_CUDA_ENTRY_SYMBOL + " symbol (not a crunet CUDA backend library)";
  else if (!api) bad = "its entry point returned nothing";
  else if (api->abi_version != CRUNET_BACKEND_ABI_VERSION || api->struct_size < sizeof(CrunetCudaApiV1))
    bad = "it has backend ABI version " + std::to_string(api->abi_version) + ", this addon needs " +
          std::to_string(CRUNET_BACKEND_ABI_VERSION) + " (rebuild both with 'npm run build:native')";
  else if (api->fingerprint != CRUNET_BACKEND_ABI_FINGERPRINT)
    bad = "it was built from another revision of native/core/backend.h (rebuild both with 'npm run build:native')";
  if (!bad.empty()) {
    dlclose(h);
    why = "cannot use " + path + ": " + bad;
    return nullptr;
  }
  loaded()[path] = api;
  return api;
}

// "cuda" -> 0, "cuda:N" -> N; -1 for anything else.
int cuda_index(const std::string& device) {
  static const std::regex re("cuda(:([0-9]{1,6}))?");
  std::smatch m;
  if (!std::regex_match(device, m, re)) return -1;
  return m[2].matched ? std::stoi(m[2].str()) : 0;
}

Backend& cuda_backend(Napi::Env env, const std::string& device, int index, const CrunetCudnnOptionsV1& o) {
  std::lock_guard<std::mutex> lock(mu());
  using Key = std::tuple<int, int, int, int, int>;
  static auto* backends = new std::map<Key, Backend*>;  // never destroyed: see loaded()
  Key key{index, o.benchmark, o.deterministic, o.benchmark_limit, o.allow_tf32};
  auto it = backends->find(key);
  if (it != backends->end()) return *it->second;
  std::string why;
  const CrunetCudaApiV1* api = load_locked(why);
  if (!api) throw Napi::Error::New(env, "device '" + device + "': " + why);
  // Created on the engine thread, which runs all backend work.
  Backend* b = nullptr;
  char err[2048] = {0};
  run_sync([&] { b = api->create_backend(index, &o, err, sizeof err); });
  if (!b) throw Napi::Error::New(env, "device '" + device + "': " + (err[0] ? err : "the CUDA backend could not be created"));
  backends->emplace(key, b);
  return *b;
}

bool env_flag(const char* name, bool def) {
  const char* v = std::getenv(name);
  if (!v || !*v) return def;
  std::string s = v;
  if (s == "1" || s == "true" || s == "on" || s == "yes") return true;
  if (s == "0" || s == "false" || s == "off" || s == "no") return false;
  throw std::runtime_error(std::string(name) + "=" + s + ": expected 1/0, true/false, on/off or yes/no");
}

}  // namespace

Backend& cpu_backend() {
  static std::once_flag once;
  static std::unique_ptr<Backend> cpu;
  std::call_once(once, [] { cpu = make_cpu_backend(); });
  return *cpu;
}

CrunetCudnnOptionsV1 cudnn_options_from_js(const Napi::Value& v) {
  Napi::Env env = v.Env();
  CrunetCudnnOptionsV1 o{sizeof(CrunetCudnnOptionsV1), 0, 0, 10, 1};
  try {
    o.benchmark = env_flag("CRUNET_CUDNN_BENCHMARK", false);
    o.deterministic = env_flag("CRUNET_CUDNN_DETERMINISTIC", false);
    o.allow_tf32 = env_flag("CRUNET_CUDNN_ALLOW_TF32", true);
    if (const char* lim = std::getenv("CRUNET_CUDNN_BENCHMARK_LIMIT"); lim && *lim) {
      char* end = nullptr;
      long n = std::strtol(lim, &end, 10);
      if (*end || n < 0 || n > 1000) throw std::runtime_error(std::string("CRUNET_CUDNN_BENCHMARK_LIMIT=") + lim + ": expected an integer 0..1000");
      o.benchmark_limit = static_cast<int32_t>(n);
    }
  } catch (const std::runtime_error& e) {
    throw Napi::TypeError::New(env, e.what());
  }
  if (v.IsUndefined() || v.IsNull()) return o;
  if (!v.IsObject()) throw Napi::TypeError::New(env, "options.cudnn: expected an object {benchmark, deterministic, benchmarkLimit, allowTF32, cacheFile}");
  auto obj = v.As<Napi::Object>();
  auto flag = [&](const char* key, int32_t& dst) {
    if (!obj.Has(key) || obj.Get(key).IsUndefined()) return;
    if (!obj.Get(key).IsBoolean()) throw Napi::TypeError::New(env, std::string("options.cudnn.") + key + ": expected a boolean");
    dst = obj.Get(key).As<Napi::Boolean>().Value() ? 1 : 0;
  };
  flag("benchmark", o.benchmark);
  flag("deterministic", o.deterministic);
  flag("allowTF32", o.allow_tf32);
  if (obj.Has("benchmarkLimit") && !obj.Get("benchmarkLimit").IsUndefined()) {
    Napi::Value l = obj.Get("benchmarkLimit");
    double d = l.IsNumber() ? l.As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= 0 && d <= 1000 && d == static_cast<int>(d)))
      throw Napi::TypeError::New(env, "options.cudnn.benchmarkLimit: expected an integer 0..1000 (0: try every algorithm)");
    o.benchmark_limit = static_cast<int32_t>(d);
  }
  Napi::Array names = obj.GetPropertyNames();
  for (uint32_t i = 0; i < names.Length(); i++) {
    std::string k = names.Get(i).ToString().Utf8Value();
    if (k != "benchmark" && k != "deterministic" && k != "benchmarkLimit" && k != "allowTF32" && k != "cacheFile")
      throw Napi::TypeError::New(env, "options.cudnn: unknown field '" + k +
                                          "' (known: benchmark, deterministic, benchmarkLimit, allowTF32, cacheFile)");
  }
  return o;
}

std::string cudnn_cache_file_from_js(const Napi::Value& v) {
  if (v.IsObject() && v.As<Napi::Object>().Has("cacheFile")) {
    Napi::Value f = v.As<Napi::Object>().Get("cacheFile");
    if (!f.IsUndefined()) {
      if (!f.IsString() || f.As<Napi::String>().Utf8Value().empty())
        throw Napi::TypeError::New(v.Env(), "options.cudnn.cacheFile: expected a file path");
      return f.As<Napi::String>().Utf8Value();
    }
  }
  const char* e = std::getenv("CRUNET_CUDNN_CACHE_FILE");
  return e ? e : "";
}

const CrunetCudaApiV1* cuda_api() {
  std::lock_guard<std::mutex> lock(mu());
  std::string why;
  return load_locked(why);
}

int cuda_algorithm_cache(const CrunetCudaApiV1* api, bool save, const std::string& device, const std::string& path,
                         std::string& note) {
  char msg[2048] = {0};
  int n = (save ? api->save_algorithm_cache : api->load_algorithm_cache)(cuda_index(device), path.c_str(), msg, sizeof msg);
  note = msg;
  return n;
}

Backend& backend_for(Napi::Env env, const std::string& device) {
  return backend_for(env, device, CrunetCudnnOptionsV1{sizeof(CrunetCudnnOptionsV1), 0, 0, 10, 1});
}

Backend& backend_for(Napi::Env env, const std::string& device, const CrunetCudnnOptionsV1& cudnn) {
  if (device == "cpu") return cpu_backend();
  int index = cuda_index(device);
  if (index >= 0) return cuda_backend(env, device, index, cudnn);
  throw Napi::Error::New(env, "device '" + device + "' is not known; valid devices: 'cpu', 'cuda', 'cuda:N'");
}

CudaStatus cuda_status() {
  CudaStatus s;
  std::lock_guard<std::mutex> lock(mu());
  s.library = library_path().first;
  s.present = file_exists(s.library);
  std::string why;
  const CrunetCudaApiV1* api = load_locked(why);
  if (!api) {
    s.reason = why;
    return s;
  }
  s.loaded = true;
  s.build = api->build ? api->build : "";
  std::vector<CrunetCudaDeviceV1> devs(64);
  char err[2048] = {0};
  int n = api->list_devices(devs.data(), static_cast<int>(devs.size()), &s.versions, err, sizeof err);
  if (n < 0) {
    s.reason = err[0] ? err : "the CUDA library could not list devices";
    return s;
  }
  devs.resize(std::min<size_t>(static_cast<size_t>(n), devs.size()));
  s.devices = std::move(devs);
  return s;
}

}  // namespace crunet::addon
