// The addon's one export table (typed by lib/engine/native.ts). Bindings only: no maths here.
#include <napi.h>
#include <omp.h>

#include "../cpu/cpu_info.h"
#include "../cpu/dnnl_util.h"
#include "backend_registry.h"
#include "engine_thread.h"
#include "session_wrap.h"

namespace crunet::addon {
namespace {

Napi::Value build_info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto cpu = cpu::cpu_info();
  int threads = 0;
  run_sync([&] { threads = cpu_backend().num_threads(); });
  auto o = Napi::Object::New(env);
  o.Set("compiler", std::string("g++ ") + __VERSION__);
  o.Set("buildSystem", CRUNET_BUILD_SYSTEM);
  o.Set("napiVersion", NAPI_VERSION);
  o.Set("cxxStandard", static_cast<double>(__cplusplus));
  auto dnnl = Napi::Object::New(env);
  dnnl.Set("version", cpu.dnnl_version);
  dnnl.Set("isa", cpu.isa);
  dnnl.Set("threading", "OpenMP");
  o.Set("onednn", dnnl);
  o.Set("threads", threads);
  o.Set("cuda", false);
  return o;
}

Napi::Value devices(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto cpu = cpu::cpu_info();
  auto d = Napi::Object::New(env);
  d.Set("id", "cpu");
  d.Set("type", "cpu");
  d.Set("name", cpu.cpu_model);
  d.Set("cores", cpu.logical_cores);
  d.Set("isa", cpu.isa);
  auto a = Napi::Array::New(env);
  a.Set(0u, d);
  return a;
}

Napi::Value set_num_threads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber() || info[0].As<Napi::Number>().Int32Value() < 1)
    throw Napi::RangeError::New(env, "setNumThreads: expected a positive integer");
  int n = info[0].As<Napi::Number>().Int32Value();
  run_sync([n] { cpu_backend().set_num_threads(n); });  // OpenMP's count is per thread: set it on the engine thread
  return env.Undefined();
}

// Seconds spent inside oneDNN primitives so far (read on the engine thread, which is the only writer).
Napi::Value primitive_seconds(const Napi::CallbackInfo& info) {
  double s = 0;
  run_sync([&] { s = cpu::primitive_seconds(); });
  return Napi::Number::New(info.Env(), s);
}

Napi::Object init(Napi::Env env, Napi::Object exports) {
  Napi::Function session = SessionWrap::define(env);
  env.SetInstanceData(new Napi::FunctionReference(Napi::Persistent(session)));
  exports.Set("NativeSession", session);
  exports.Set("compile", Napi::Function::New(env, SessionWrap::compile, "compile"));
  exports.Set("buildInfo", Napi::Function::New(env, build_info, "buildInfo"));
  exports.Set("devices", Napi::Function::New(env, devices, "devices"));
  exports.Set("primitiveSeconds", Napi::Function::New(env, primitive_seconds, "primitiveSeconds"));
  exports.Set("setNumThreads", Napi::Function::New(env, set_num_threads, "setNumThreads"));
  return exports;
}

}  // namespace
}  // namespace crunet::addon

static Napi::Object InitCrunet(Napi::Env env, Napi::Object exports) { return crunet::addon::init(env, exports); }
NODE_API_MODULE(crunet, InitCrunet)
