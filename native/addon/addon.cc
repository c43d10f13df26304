// The addon's one export table (typed by lib/engine/native.ts). Bindings only: no maths here.
#include <napi.h>
#include <omp.h>

#include "../cpu/cpu_info.h"
#include "../core/error.h"
#include "../core/executor.h"
#include "../core/memory_plan.h"
#include "../cpu/dnnl_util.h"
#include "backend_registry.h"
#include "engine_thread.h"
#include "fault.h"
#include "graph_from_js.h"
#include "introspect.h"
#include "session_wrap.h"
#ifdef CRUNET_HAVE_GLOO
#include "process_group_wrap.h"
#endif

namespace crunet::addon {
namespace {

// 13000 -> "13.0" (driver, runtime); 91400 -> "9.14.0" (cuDNN, cuBLAS).
std::string cuda_ver(int v) { return v > 0 ? std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10) : "none"; }
std::string lib_ver(int v) {
  return v > 0 ? std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100) : "unknown";
}

// Driver and runtime are 1000*major + 10*minor; cuDNN and cuBLAS 10000*major + 100*minor + patch.
Napi::Object cuda_versions(Napi::Env env, const CrunetCudaVersionsV1& v) {
  auto o = Napi::Object::New(env);
  o.Set("driver", cuda_ver(v.driver));
  o.Set("runtime", cuda_ver(v.runtime));
  o.Set("cudnn", lib_ver(v.cudnn));
  o.Set("cublas", lib_ver(v.cublas));
  o.Set("compiledRuntime", cuda_ver(v.compiled_runtime));
  o.Set("compiledCudnn", lib_ver(v.compiled_cudnn));
  o.Set("compiledCublas", lib_ver(v.compiled_cublas));
  return o;
}

Napi::Value build_info(const Napi::CallbackInfo& info) {
  fault_point("buildInfo");
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
#ifdef CRUNET_HAVE_GLOO
  o.Set("gloo", true);
#else
  o.Set("gloo", false);
#endif
  // CUDA: whether the backend library exists, and when it cannot be used, why.
  auto cuda = cuda_status();
  o.Set("cuda", cuda.present);
  o.Set("cudaLibrary", cuda.library);
  if (cuda.loaded) {
    o.Set("cudaBuild", cuda.build);
    o.Set("cudaVersions", cuda_versions(env, cuda.versions));
  }
  o.Set("cudaDevices", static_cast<double>(cuda.devices.size()));
  if (!cuda.reason.empty()) o.Set("cudaUnavailableReason", cuda.reason);
  return o;
}

Napi::Value devices(const Napi::CallbackInfo& info) {
  fault_point("devices");
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
  // CUDA devices, when the backend library loads and a driver and a device are there (otherwise
  // buildInfo().cudaUnavailableReason says why there are none).
  auto cuda = cuda_status();
  for (const auto& c : cuda.devices) {
    auto g = Napi::Object::New(env);
    g.Set("id", "cuda:" + std::to_string(c.index));
    g.Set("type", "cuda");
    g.Set("name", std::string(c.name));
    g.Set("computeCapability", std::to_string(c.cc_major) + "." + std::to_string(c.cc_minor));
    g.Set("memoryBytes", static_cast<double>(c.total_bytes));
    if (c.free_bytes) g.Set("freeBytes", static_cast<double>(c.free_bytes));
    g.Set("multiprocessors", c.multiprocessors);
    g.Set("pciBusId", std::string(c.pci_bus_id));
    g.Set("versions", cuda_versions(env, cuda.versions));
    a.Set(a.Length(), g);
  }
  return a;
}

Napi::Value set_num_threads(const Napi::CallbackInfo& info) {
  fault_point("setNumThreads");
  Napi::Env env = info.Env();
  if (!info[0].IsNumber() || info[0].As<Napi::Number>().Int32Value() < 1)
    throw Napi::RangeError::New(env, "setNumThreads: expected a positive integer");
  int n = info[0].As<Napi::Number>().Int32Value();
  run_sync([n] { cpu_backend().set_num_threads(n); });  // OpenMP's count is per thread: set it on the engine thread
  return env.Undefined();
}

// Seconds spent inside oneDNN primitives so far (read on the engine thread, which is the only writer).
Napi::Value primitive_seconds(const Napi::CallbackInfo& info) {
  fault_point("primitiveSeconds");
  double s = 0;
  run_sync([&] { s = cpu::primitive_seconds(); });
  return Napi::Number::New(info.Env(), s);
}

Napi::Value shutdown(const Napi::CallbackInfo& info) {
  shutdown_engine_thread();
  return info.Env().Undefined();
}

// The memory planner alone, for its tests: planMemory([{bytes, first, last}], reuse, alignment) ->
// {offsets, arenaBytes, naiveBytes}. Sessions plan with their backend's Backend::arena_alignment().
Napi::Value plan_memory_js(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 3 || !info[0].IsArray() || !info[1].IsBoolean() || !info[2].IsNumber())
    throw Napi::TypeError::New(env, "planMemory(requests: {bytes, first, last}[], reuse: boolean, alignment: number)");
  auto a = info[0].As<Napi::Array>();
  std::vector<BufferRequest> req;
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value v = a.Get(i);
    Napi::Object o = v.IsObject() ? v.As<Napi::Object>() : Napi::Object::New(env);
    if (!o.Get("bytes").IsNumber() || !o.Get("first").IsNumber() || !o.Get("last").IsNumber())
      throw Napi::TypeError::New(env, "planMemory: request " + std::to_string(i) + " needs numbers bytes, first and last");
    if (o.Get("bytes").As<Napi::Number>().Int64Value() < 0)
      throw Napi::RangeError::New(env, "planMemory: request " + std::to_string(i) + " has negative bytes");
    req.push_back({static_cast<size_t>(o.Get("bytes").As<Napi::Number>().Int64Value()), o.Get("first").As<Napi::Number>().Int32Value(),
                   o.Get("last").As<Napi::Number>().Int32Value()});
  }
  const int64_t alignment = info[2].As<Napi::Number>().Int64Value();
  if (alignment < 1)  // the planner checks the rest; a negative one would wrap to a huge size_t
    throw Napi::RangeError::New(env, "memory plan: alignment " + std::to_string(alignment) + " is not a power of two");
  MemoryPlan p;
  try {
    p = plan_memory(req, info[1].As<Napi::Boolean>().Value(), static_cast<size_t>(alignment));
  } catch (const Error& e) {
    throw Napi::Error::New(env, e.what());
  }
  auto offsets = Napi::Array::New(env, p.offsets.size());
  for (size_t i = 0; i < p.offsets.size(); i++) offsets.Set(static_cast<uint32_t>(i), static_cast<double>(p.offsets[i]));
  auto r = Napi::Object::New(env);
  r.Set("offsets", offsets);
  r.Set("arenaBytes", static_cast<double>(p.arena_bytes));
  r.Set("naiveBytes", static_cast<double>(p.naive_bytes));
  return r;
}

// Compile's tensor-size check alone, with any limit, so that the check CUDA needs (cuDNN's 2^31 - 1
// elements) is tested on machines without a GPU: checkTensorElements(graph, batch, limit, where).
Napi::Value check_tensor_elements_js(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 4 || !info[1].IsNumber() || !info[2].IsNumber() || !info[3].IsString())
    throw Napi::TypeError::New(env, "checkTensorElements(graph, batch: number, limit: number, where: string)");
  GraphDesc g = graph_from_js(info[0]);
  try {
    check_tensor_elements(infer_shapes(g, info[1].As<Napi::Number>().Int64Value()), info[2].As<Napi::Number>().Int64Value(),
                          info[3].As<Napi::String>().Utf8Value());
  } catch (const Error& e) {
    throw Napi::Error::New(env, e.what());
  }
  return env.Undefined();
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
  exports.Set("shutdown", Napi::Function::New(env, shutdown, "shutdown"));
  exports.Set("planMemory", Napi::Function::New(env, plan_memory_js, "planMemory"));
  exports.Set("opTable", Napi::Function::New(env, op_table_js, "opTable"));
  exports.Set("schedule", Napi::Function::New(env, schedule_js, "schedule"));
  exports.Set("checkTensorElements", Napi::Function::New(env, check_tensor_elements_js, "checkTensorElements"));
#ifdef CRUNET_HAVE_GLOO
  define_process_group(env, exports);
#endif
  return exports;
}

}  // namespace
}  // namespace crunet::addon

static Napi::Object InitCrunet(Napi::Env env, Napi::Object exports) { return crunet::addon::init(env, exports); }
NODE_API_MODULE(crunet, InitCrunet)
