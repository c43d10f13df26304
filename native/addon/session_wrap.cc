#include "session_wrap.h"

#include <cmath>
#include <cstring>

#include "../core/error.h"
#include "backend_registry.h"
#include "engine_thread.h"
#include "graph_from_js.h"

namespace crunet::addon {
namespace {

Napi::Array shape_js(Napi::Env env, const Shape& s, size_t skip = 0) {
  auto a = Napi::Array::New(env);
  for (size_t i = skip; i < s.size(); i++) a.Set(static_cast<uint32_t>(i - skip), Napi::Number::New(env, static_cast<double>(s[i])));
  return a;
}

double opt_number(const Napi::Object& o, const char* key, double def) {
  if (!o.Has(key) || o.Get(key).IsUndefined()) return def;
  Napi::Value v = o.Get(key);
  if (!v.IsNumber() || !std::isfinite(v.As<Napi::Number>().DoubleValue()))
    throw Napi::TypeError::New(o.Env(), std::string("options.") + key + ": expected a finite number");
  return v.As<Napi::Number>().DoubleValue();
}
bool opt_bool(const Napi::Object& o, const char* key, bool def) {
  if (!o.Has(key) || o.Get(key).IsUndefined()) return def;
  if (!o.Get(key).IsBoolean()) throw Napi::TypeError::New(o.Env(), std::string("options.") + key + ": expected a boolean");
  return o.Get(key).As<Napi::Boolean>().Value();
}

SgdConfig read_sgd(const Napi::Object& o, SgdConfig cfg) {
  cfg.lr = static_cast<float>(opt_number(o, "lr", cfg.lr));
  cfg.momentum = static_cast<float>(opt_number(o, "momentum", cfg.momentum));
  cfg.weight_decay = static_cast<float>(opt_number(o, "weightDecay", cfg.weight_decay));
  cfg.nesterov = opt_bool(o, "nesterov", cfg.nesterov);
  if (cfg.lr < 0 || cfg.momentum < 0 || cfg.weight_decay < 0)
    throw Napi::RangeError::New(o.Env(), "optimizer: lr, momentum and weightDecay must be >= 0");
  if (cfg.nesterov && cfg.momentum <= 0)
    throw Napi::RangeError::New(o.Env(), "optimizer: nesterov needs momentum > 0");
  return cfg;
}

Napi::Float32Array new_f32(Napi::Env env, const Shape& s) {
  return Napi::Float32Array::New(env, static_cast<size_t>(numel(s)));
}

}  // namespace

Napi::Function SessionWrap::define(Napi::Env env) {
  return DefineClass(env, "NativeSession",
                     {InstanceMethod("step", &SessionWrap::step),
                      InstanceMethod("forward", &SessionWrap::forward),
                      InstanceMethod("gradients", &SessionWrap::gradients),
                      InstanceMethod("params", &SessionWrap::params),
                      InstanceMethod("values", &SessionWrap::values),
                      InstanceMethod("getParameter", &SessionWrap::get_parameter),
                      InstanceMethod("setParameter", &SessionWrap::set_parameter),
                      InstanceMethod("getMomentum", &SessionWrap::get_momentum),
                      InstanceMethod("setMomentum", &SessionWrap::set_momentum),
                      InstanceMethod("setOptimizer", &SessionWrap::set_optimizer),
                      InstanceMethod("memory", &SessionWrap::memory),
                      InstanceMethod("profile", &SessionWrap::profile),
                      InstanceMethod("resetProfile", &SessionWrap::reset_profile),
                      InstanceMethod("setProfiling", &SessionWrap::set_profiling),
                      InstanceMethod("dispose", &SessionWrap::dispose)});
}

SessionWrap::SessionWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SessionWrap>(info) {
  if (info.Length() != 1 || !info[0].IsExternal())
    throw Napi::TypeError::New(info.Env(), "NativeSession cannot be constructed directly: use compile()");
  exec_.reset(info[0].As<Napi::External<Executor>>().Data());
  auto m = exec_->memory();
  external_bytes_ = static_cast<int64_t>(m.planned_peak_bytes);
  Napi::MemoryManagement::AdjustExternalMemory(info.Env(), external_bytes_);
}

SessionWrap::~SessionWrap() {
  if (exec_) {  // collected without dispose(): free on the engine thread, where backend work belongs
    Executor* e = exec_.release();
    run_sync([e] { delete e; });
  }
}

Napi::Value SessionWrap::compile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  GraphDesc graph = graph_from_js(info[0]);
  if (!info[1].IsObject()) throw Napi::TypeError::New(env, "compile: options must be an object");
  auto o = info[1].As<Napi::Object>();
  ExecutorOptions opts;
  double batch = opt_number(o, "batchSize", 0);
  if (batch < 1 || batch != std::floor(batch) || batch > 1e7)
    throw Napi::RangeError::New(env, "compile: options.batchSize must be a positive integer, got " + std::to_string(batch));
  opts.batch = static_cast<int64_t>(batch);
  opts.seed = static_cast<uint64_t>(opt_number(o, "seed", 0));
  opts.input_grads = opt_bool(o, "inputGrads", false);
  opts.reuse_memory = opt_bool(o, "reuseMemory", true);
  opts.profile = opt_bool(o, "profile", false);
  opts.fuse = opt_bool(o, "fuse", true);
  opts.sgd = read_sgd(o, opts.sgd);
  std::string device = o.Has("device") && o.Get("device").IsString() ? o.Get("device").As<Napi::String>().Utf8Value() : "cpu";
  // cuDNN algorithm settings ({benchmark, deterministic, benchmarkLimit, allowTF32, cacheFile}, or the
  // CRUNET_CUDNN_* environment variables); read for CUDA devices only, and checked before a device is
  // touched, so that their errors show without a GPU.
  const CrunetCudnnOptionsV1 cudnn = device == "cpu" ? CrunetCudnnOptionsV1{} : cudnn_options_from_js(o.Get("cudnn"));
  // The algorithm cache file: read before the kernels choose their algorithms, written after, so that
  // the next process skips the searches (Note [algorithm cache file] in native/cuda/conv_algo.cc).
  struct CacheFile {
    const CrunetCudaApiV1* api = nullptr;
    std::string path, load_note, save_note;
    int loaded = 0, saved = 0;
  };
  auto cache = std::make_shared<CacheFile>();
  if (device != "cpu") cache->path = cudnn_cache_file_from_js(o.Get("cudnn"));
  Backend& backend = device == "cpu" ? backend_for(env, device) : backend_for(env, device, cudnn);  // throws, naming the device, when it cannot be used
  if (!cache->path.empty()) cache->api = cuda_api();  // loaded by backend_for; fetched here, on the JS thread

  auto result = std::make_shared<Executor*>(nullptr);
  auto* ctor = env.GetInstanceData<Napi::FunctionReference>();
  return submit(
      env,
      [result, graph = std::move(graph), opts, &backend, device, cache] {
        if (cache->api) cache->loaded = cuda_algorithm_cache(cache->api, false, device, cache->path, cache->load_note);
        // A file that could not be read as ours is left untouched; otherwise new choices are written back,
        // also when the session then fails (e.g. out of memory for the arena): the searches were done.
        auto save = [&] {
          if (cache->api && cache->loaded >= 0)
            cache->saved = cuda_algorithm_cache(cache->api, true, device, cache->path, cache->save_note);
        };
        try {
          *result = new Executor(backend, graph, opts);
        } catch (...) {
          save();
          throw;
        }
        save();
      },
      [result, ctor, cache](Napi::Env env) -> Napi::Value {
        Napi::Object s = ctor->New({Napi::External<Executor>::New(env, *result)});
        if (cache->api) {
          auto c = Napi::Object::New(env);
          c.Set("file", cache->path);
          c.Set("loaded", cache->loaded);
          c.Set("saved", cache->saved);
          c.Set("notes", std::string(cache->load_note + "; " + cache->save_note));
          s.Set("algorithmCache", c);
        }
        return s;
      });
}

Executor& SessionWrap::live(Napi::Env env, const char* what) {
  if (!exec_) throw Napi::Error::New(env, std::string(what) + ": this session was disposed");
  if (busy_) throw Napi::Error::New(env, std::string(what) + ": a call is already running on this session; await it before starting another");
  return *exec_;
}

// Marks the session busy until the returned guard dies (on the JS thread, with the finished job), and
// keeps the session object and the given arrays alive while native code uses their memory.
std::shared_ptr<void> SessionWrap::hold(const Napi::CallbackInfo& info, std::vector<Napi::Reference<Napi::Value>> refs) {
  busy_ = true;
  refs.push_back(Napi::Persistent(info.This()));
  auto owned = std::make_shared<std::vector<Napi::Reference<Napi::Value>>>(std::move(refs));
  return std::shared_ptr<void>(nullptr, [this, owned](void*) { busy_ = false; });
}

Feeds SessionWrap::read_feeds(const Napi::Value& v, std::vector<Napi::Reference<Napi::Value>>& refs) {
  Napi::Env env = v.Env();
  const auto& g = exec_->graph();
  if (!v.IsArray()) throw Napi::TypeError::New(env, "feeds: expected an array with one typed array per graph input");
  auto a = v.As<Napi::Array>();
  std::vector<const ValueInfo*> inputs;
  for (auto& val : g.values)
    if (val.producer < 0) inputs.push_back(&val);
  if (a.Length() != inputs.size())
    throw Napi::TypeError::New(env, "feeds: expected " + std::to_string(inputs.size()) + " arrays (one per graph input), got " + std::to_string(a.Length()));
  Feeds feeds;
  for (auto* in : inputs) {
    Napi::Value x = a.Get(static_cast<uint32_t>(in->input_index));
    bool f32 = in->dtype == DType::f32;
    auto want_type = f32 ? napi_float32_array : napi_int32_array;
    if (!x.IsTypedArray() || x.As<Napi::TypedArray>().TypedArrayType() != want_type)
      throw Napi::TypeError::New(env, "input " + in->name + ": expected a " + (f32 ? "Float32Array" : "Int32Array"));
    auto t = x.As<Napi::TypedArray>();
    size_t want = static_cast<size_t>(numel(in->shape));
    if (t.ElementLength() != want)
      throw Napi::RangeError::New(env, "input " + in->name + ": expected " + std::to_string(want) + " elements (shape " +
                                           shape_str(in->shape) + "), got " + std::to_string(t.ElementLength()));
    // The element pointer from napi_get_typedarray_info: unlike ArrayBuffer().Data() it also works for
    // arrays over a SharedArrayBuffer (what worker-thread loaders hand out).
    if (f32) feeds.push_back(x.As<Napi::Float32Array>().Data());
    else feeds.push_back(x.As<Napi::Int32Array>().Data());
    refs.push_back(Napi::Persistent(x));
  }
  return feeds;
}

Napi::Value SessionWrap::step(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Executor& ex = live(env, "step");
  std::vector<Napi::Reference<Napi::Value>> refs;
  Feeds feeds = read_feeds(info[0], refs);
  float lr = info[1].IsNumber() ? info[1].As<Napi::Number>().FloatValue() : ex.sgd().lr;
  auto stats = std::make_shared<StepStats>();
  auto guard = hold(info, std::move(refs));
  return submit(
      env, [&ex, feeds, lr, stats] { *stats = ex.step(feeds, lr); },
      [stats, guard](Napi::Env env) -> Napi::Value {
        auto r = Napi::Object::New(env);
        r.Set("loss", stats->loss);
        r.Set("correct", stats->correct);
        r.Set("topkCorrect", stats->topk_correct);
        return r;
      });
}

Napi::Value SessionWrap::forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Executor& ex = live(env, "forward");
  std::vector<Napi::Reference<Napi::Value>> refs;
  Feeds feeds = read_feeds(info[0], refs);
  auto outs = Napi::Array::New(env);
  std::vector<float*> ptrs;
  for (int v : ex.graph().outputs) {
    auto arr = new_f32(env, ex.graph().values[v].shape);
    ptrs.push_back(arr.Data());
    outs.Set(outs.Length(), arr);
  }
  refs.push_back(Napi::Persistent(Napi::Value(outs)));
  auto out_ref = std::make_shared<Napi::Reference<Napi::Value>>(Napi::Persistent(Napi::Value(outs)));
  auto guard = hold(info, std::move(refs));
  return submit(
      env, [&ex, feeds, ptrs] { ex.forward(feeds, ptrs); },
      [out_ref, guard](Napi::Env) -> Napi::Value { return out_ref->Value(); });
}

Napi::Value SessionWrap::gradients(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Executor& ex = live(env, "gradients");
  const auto& g = ex.graph();
  std::vector<Napi::Reference<Napi::Value>> refs;
  Feeds feeds = read_feeds(info[0], refs);
  if (g.outputs.empty()) throw Napi::Error::New(env, "gradients: the graph has no outputs");
  const auto& target = g.values[g.outputs[0]];
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array ||
      info[1].As<Napi::TypedArray>().ElementLength() != static_cast<size_t>(numel(target.shape)))
    throw Napi::TypeError::New(env, "gradients: seed must be a Float32Array of " + std::to_string(numel(target.shape)) +
                                        " elements (the shape of output " + target.name + ", " + shape_str(target.shape) + ")");
  auto seed = info[1].As<Napi::Float32Array>();
  refs.push_back(Napi::Persistent(info[1]));

  auto result = Napi::Object::New(env);
  auto outs = Napi::Array::New(env), in_grads = Napi::Array::New(env), p_grads = Napi::Array::New(env);
  std::vector<float*> out_p, in_p, p_p;
  for (int v : g.outputs) {
    auto a = new_f32(env, g.values[v].shape);
    out_p.push_back(a.Data());
    outs.Set(outs.Length(), a);
  }
  for (auto& v : g.values) {
    if (v.producer >= 0) continue;
    if (v.dtype == DType::f32) {
      auto a = new_f32(env, v.shape);
      in_p.push_back(a.Data());
      in_grads.Set(static_cast<uint32_t>(v.input_index), a);
    } else {
      in_p.push_back(nullptr);
      in_grads.Set(static_cast<uint32_t>(v.input_index), env.Null());
    }
  }
  for (size_t i = 0; i < g.params.size(); i++) {
    if (g.params[i].trainable) {
      auto a = new_f32(env, g.params[i].shape);
      p_p.push_back(a.Data());
      p_grads.Set(static_cast<uint32_t>(i), a);
    } else {
      p_p.push_back(nullptr);
      p_grads.Set(static_cast<uint32_t>(i), env.Null());
    }
  }
  result.Set("outputs", outs);
  result.Set("inputGrads", in_grads);
  result.Set("paramGrads", p_grads);
  auto res_ref = std::make_shared<Napi::Reference<Napi::Value>>(Napi::Persistent(Napi::Value(result)));
  auto guard = hold(info, std::move(refs));
  const float* seed_p = seed.Data();
  return submit(
      env, [&ex, feeds, seed_p, out_p, in_p, p_p] { ex.gradients(feeds, seed_p, out_p, in_p, p_p); },
      [res_ref, guard](Napi::Env) -> Napi::Value { return res_ref->Value(); });
}

Napi::Value SessionWrap::params(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!exec_) throw Napi::Error::New(env, "params: this session was disposed");
  auto a = Napi::Array::New(env);
  for (auto& p : exec_->graph().params) {
    auto o = Napi::Object::New(env);
    o.Set("name", p.name);
    o.Set("shape", shape_js(env, p.shape));
    o.Set("trainable", p.trainable);
    o.Set("weightDecay", p.weight_decay);
    a.Set(a.Length(), o);
  }
  return a;
}

Napi::Value SessionWrap::values(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!exec_) throw Napi::Error::New(env, "values: this session was disposed");
  auto a = Napi::Array::New(env);
  for (auto& v : exec_->graph().values) {
    auto o = Napi::Object::New(env);
    o.Set("name", v.name);
    o.Set("shape", shape_js(env, v.shape));
    o.Set("dtype", dtype_name(v.dtype));
    a.Set(a.Length(), o);
  }
  return a;
}

int SessionWrap::param_index(const Napi::Value& v) {
  const auto& g = exec_->graph();
  if (!v.IsNumber()) throw Napi::TypeError::New(v.Env(), "parameter index must be a number");
  int i = v.As<Napi::Number>().Int32Value();
  if (i < 0 || i >= static_cast<int>(g.params.size())) throw Napi::RangeError::New(v.Env(), "parameter index out of range");
  return i;
}

Napi::Value SessionWrap::get_parameter(const Napi::CallbackInfo& info) {
  Executor& ex = live(info.Env(), "getParameter");
  int i = param_index(info[0]);
  auto a = new_f32(info.Env(), ex.graph().params[i].shape);
  float* p = a.Data();
  run_sync([&] { ex.read_param(i, p); });
  return a;
}

Napi::Value SessionWrap::get_momentum(const Napi::CallbackInfo& info) {
  Executor& ex = live(info.Env(), "getMomentum");
  int i = param_index(info[0]);
  auto a = new_f32(info.Env(), ex.graph().params[i].shape);
  float* p = a.Data();
  try {
    run_sync([&] { ex.read_momentum(i, p); });
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
  return a;
}

namespace {
const float* checked_values(const Napi::CallbackInfo& info, const ParamDesc& p, const char* what) {
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(info.Env(), std::string(what) + " " + p.name + ": expected a Float32Array");
  auto a = info[1].As<Napi::Float32Array>();
  if (a.ElementLength() != static_cast<size_t>(numel(p.shape)))
    throw Napi::RangeError::New(info.Env(), std::string(what) + " " + p.name + ": expected " + std::to_string(numel(p.shape)) +
                                                " values (shape " + shape_str(p.shape) + "), got " + std::to_string(a.ElementLength()));
  return a.Data();
}
}  // namespace

Napi::Value SessionWrap::set_parameter(const Napi::CallbackInfo& info) {
  Executor& ex = live(info.Env(), "setParameter");
  int i = param_index(info[0]);
  const float* src = checked_values(info, ex.graph().params[i], "setParameter");
  run_sync([&] { ex.write_param(i, src); });
  return info.Env().Undefined();
}

Napi::Value SessionWrap::set_momentum(const Napi::CallbackInfo& info) {
  Executor& ex = live(info.Env(), "setMomentum");
  int i = param_index(info[0]);
  const float* src = checked_values(info, ex.graph().params[i], "setMomentum");
  try {
    run_sync([&] { ex.write_momentum(i, src); });
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
  return info.Env().Undefined();
}

Napi::Value SessionWrap::set_optimizer(const Napi::CallbackInfo& info) {
  Executor& ex = live(info.Env(), "setOptimizer");
  if (!info[0].IsObject()) throw Napi::TypeError::New(info.Env(), "setOptimizer: expected an object");
  ex.set_sgd(read_sgd(info[0].As<Napi::Object>(), ex.sgd()));
  return info.Env().Undefined();
}

Napi::Value SessionWrap::memory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!exec_) throw Napi::Error::New(env, "memory: this session was disposed");
  auto m = exec_->memory();
  auto o = Napi::Object::New(env);
  o.Set("arenaBytes", static_cast<double>(m.arena_bytes));
  o.Set("naiveBytes", static_cast<double>(m.naive_bytes));
  o.Set("parameterBytes", static_cast<double>(m.parameter_bytes));
  o.Set("scratchBytes", static_cast<double>(m.scratch_bytes));
  o.Set("plannedPeakBytes", static_cast<double>(m.planned_peak_bytes));
  o.Set("buffers", m.buffers);
  return o;
}

Napi::Value SessionWrap::profile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!exec_) throw Napi::Error::New(env, "profile: this session was disposed");
  auto a = Napi::Array::New(env);
  for (auto& p : exec_->profile()) {
    auto o = Napi::Object::New(env);
    o.Set("name", p.name);
    o.Set("op", p.op);
    o.Set("impl", p.impl);
    if (!p.report.empty()) o.Set("report", p.report);
    o.Set("forwardMs", p.forward_ms);
    o.Set("backwardMs", p.backward_ms);
    o.Set("calls", p.calls);
    a.Set(a.Length(), o);
  }
  return a;
}

Napi::Value SessionWrap::reset_profile(const Napi::CallbackInfo& info) {
  live(info.Env(), "resetProfile").reset_profile();
  return info.Env().Undefined();
}

Napi::Value SessionWrap::set_profiling(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsBoolean()) throw Napi::TypeError::New(env, "setProfiling: expected a boolean");
  live(env, "setProfiling").set_profile(info[0].As<Napi::Boolean>().Value());
  return env.Undefined();
}

Napi::Value SessionWrap::dispose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!exec_) return env.Undefined();  // disposing twice is harmless, as in tfjs
  if (busy_) throw Napi::Error::New(env, "dispose: a call is still running on this session; await it first");
  Executor* e = exec_.release();
  run_sync([e] { delete e; });
  Napi::MemoryManagement::AdjustExternalMemory(env, -external_bytes_);
  external_bytes_ = 0;
  return env.Undefined();
}

}  // namespace crunet::addon
