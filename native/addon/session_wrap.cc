#include "session_wrap.h"

#include <cmath>
#include <cstring>
#include <set>

#include "../core/error.h"
#include "backend_registry.h"
#include "engine_thread.h"
#include "fault.h"
#include "graph_from_js.h"
#ifdef CRUNET_HAVE_GLOO
#include "../dist/gradient_buckets.h"
#include "process_group_wrap.h"
#endif

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

// The constructor's name of a JS value ("Float64Array", "Array"), or its typeof; for error messages.
std::string js_type_name(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsObject()) {
    Napi::Value ctor = v.As<Napi::Object>().Get("constructor");
    if (ctor.IsFunction()) {
      Napi::Value name = ctor.As<Napi::Object>().Get("name");
      if (name.IsString()) return name.As<Napi::String>().Utf8Value();
    }
    return "object";
  }
  return v.IsNumber() ? "number" : v.IsString() ? "string" : v.IsBoolean() ? "boolean" : "a non-object value";
}

// Reads one optimizer setting as the float the kernels use: a finite double can still overflow float.
float sgd_number(const Napi::Object& o, const char* key, float def) {
  const float x = static_cast<float>(opt_number(o, key, def));
  if (!std::isfinite(x) || x < 0)
    throw Napi::RangeError::New(o.Env(), std::string("optimizer: ") + key + " must be a finite number >= 0 in float32, got " +
                                             o.Get(key).ToString().Utf8Value());
  return x;
}

// The optimizer's settings ({type, lr, momentum, nesterov, weightDecay, beta1, beta2, eps, clipGradNorm,
// paramWeightDecay, paramLrScale}), each over `cfg` when absent. lib/engine/session.ts checks them first
// with its own messages; these checks keep the addon safe on its own.
OptimizerConfig read_optimizer(const Napi::Object& o, OptimizerConfig cfg, std::vector<float>& param_wd, std::vector<float>& param_lr_scale) {
  Napi::Env env = o.Env();
  if (o.Has("type") && !o.Get("type").IsUndefined()) {
    const std::string t = o.Get("type").IsString() ? o.Get("type").As<Napi::String>().Utf8Value() : "";
    if (t != "sgd" && t != "adamw" && t != "lamb")
      throw Napi::RangeError::New(env, "optimizer: type must be 'sgd', 'adamw' or 'lamb', got " + o.Get("type").ToString().Utf8Value());
    cfg.rule = t == "adamw" ? UpdateRule::adamw : t == "lamb" ? UpdateRule::lamb : UpdateRule::sgd;
  }
  cfg.lr = sgd_number(o, "lr", cfg.lr);
  cfg.momentum = sgd_number(o, "momentum", cfg.momentum);
  cfg.weight_decay = sgd_number(o, "weightDecay", cfg.weight_decay);
  cfg.nesterov = opt_bool(o, "nesterov", cfg.nesterov);
  cfg.beta1 = sgd_number(o, "beta1", cfg.beta1);
  cfg.beta2 = sgd_number(o, "beta2", cfg.beta2);
  cfg.eps = sgd_number(o, "eps", cfg.eps);
  cfg.clip_grad_norm = sgd_number(o, "clipGradNorm", cfg.clip_grad_norm);
  // buf = momentum * buf + g: with momentum above 1 the buffer grows geometrically, every step, for any
  // gradient, so training can only diverge (PyTorch does not check; 1 itself, a plain sum, is allowed).
  if (cfg.momentum > 1)
    throw Napi::RangeError::New(env, "optimizer: momentum must be in [0, 1] (above 1 the momentum buffer grows without bound), got " +
                                         o.Get("momentum").ToString().Utf8Value());
  if (cfg.nesterov && cfg.momentum <= 0 && cfg.rule == UpdateRule::sgd)
    throw Napi::RangeError::New(env, "optimizer: nesterov needs momentum > 0");
  if (cfg.beta1 >= 1 || cfg.beta2 >= 1) throw Napi::RangeError::New(env, "optimizer: beta1 and beta2 must be in [0, 1)");
  if (!(cfg.eps > 0)) throw Napi::RangeError::New(env, "optimizer: eps must be > 0");
  auto per_param = [&](const char* key, std::vector<float>& out) {
    if (!o.Has(key) || o.Get(key).IsUndefined()) return;
    if (!o.Get(key).IsArray()) throw Napi::TypeError::New(env, std::string("optimizer: ") + key + " must be an array of numbers, one per parameter");
    auto a = o.Get(key).As<Napi::Array>();
    out.clear();
    for (uint32_t i = 0; i < a.Length(); i++) {
      Napi::Value v = a.Get(i);
      const float x = v.IsNumber() ? v.As<Napi::Number>().FloatValue() : -1.0f;
      if (!std::isfinite(x) || x < 0)
        throw Napi::RangeError::New(env, std::string("optimizer: ") + key + "[" + std::to_string(i) + "] must be a finite number >= 0 in float32");
      out.push_back(x);
    }
  };
  per_param("paramWeightDecay", param_wd);
  per_param("paramLrScale", param_lr_scale);
  return cfg;
}

// compile's `precision`: absent means fp32.
Precision read_precision(const Napi::Object& o) {
  if (!o.Has("precision") || o.Get("precision").IsUndefined()) return Precision::fp32;
  Precision p;
  if (!o.Get("precision").IsString() || !parse_precision(o.Get("precision").As<Napi::String>().Utf8Value(), &p))
    throw Napi::RangeError::New(o.Env(), "compile: options.precision: expected 'fp32', 'bf16' or 'fp16', but received " +
                                             o.Get("precision").ToString().Utf8Value());
  return p;
}

// compile's `lossScale`: absent or undefined is off; otherwise {dynamic, initScale, growthFactor,
// backoffFactor, growthInterval}, each defaulting to GradScaler's (LossScaler checks the values).
LossScalerConfig read_loss_scale(const Napi::Object& o) {
  LossScalerConfig cfg;
  if (!o.Has("lossScale") || o.Get("lossScale").IsUndefined()) return cfg;
  if (!o.Get("lossScale").IsObject()) throw Napi::TypeError::New(o.Env(), "compile: options.lossScale: expected an object");
  auto l = o.Get("lossScale").As<Napi::Object>();
  cfg.enabled = true;
  cfg.dynamic = opt_bool(l, "dynamic", cfg.dynamic);
  cfg.init_scale = static_cast<float>(opt_number(l, "initScale", cfg.init_scale));
  cfg.growth_factor = opt_number(l, "growthFactor", cfg.growth_factor);
  cfg.backoff_factor = opt_number(l, "backoffFactor", cfg.backoff_factor);
  const double interval = opt_number(l, "growthInterval", cfg.growth_interval);
  if (interval < 1 || interval > 2147483647 || interval != std::floor(interval))
    throw Napi::RangeError::New(o.Env(), "compile: options.lossScale.growthInterval: expected an integer in [1, 2^31), but received " +
                                             l.Get("growthInterval").ToString().Utf8Value());
  cfg.growth_interval = static_cast<int>(interval);
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
                      InstanceMethod("getOptimizerState", &SessionWrap::get_optimizer_state),
                      InstanceMethod("setOptimizerState", &SessionWrap::set_optimizer_state),
                      InstanceMethod("getUpdates", &SessionWrap::get_updates),
                      InstanceMethod("setUpdates", &SessionWrap::set_updates),
                      InstanceMethod("getEma", &SessionWrap::get_ema),
                      InstanceMethod("setEma", &SessionWrap::set_ema),
                      InstanceMethod("setOptimizer", &SessionWrap::set_optimizer),
                      InstanceMethod("lossScaler", &SessionWrap::loss_scaler),
                      InstanceMethod("setLossScaler", &SessionWrap::set_loss_scaler),
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
    try {
      run_sync([e] { delete e; });
    } catch (...) {  // the engine thread stopped (exit) with this job queued: the OS reclaims it; a destructor must not throw
    }
  }
}

Napi::Value SessionWrap::compile(const Napi::CallbackInfo& info) {
  fault_point("compile");
  Napi::Env env = info.Env();
  GraphDesc graph = graph_from_js(info[0]);
  if (!info[1].IsObject()) throw Napi::TypeError::New(env, "compile: options must be an object");
  auto o = info[1].As<Napi::Object>();
  ExecutorOptions opts;
  double batch = opt_number(o, "batchSize", 0);
  if (batch < 1 || batch != std::floor(batch) || batch > 1e7)
    throw Napi::RangeError::New(env, "compile: options.batchSize must be an integer in [1, 10000000], got " + Napi::Number::New(env, batch).ToString().Utf8Value());
  opts.batch = static_cast<int64_t>(batch);
  opts.seed = static_cast<uint64_t>(opt_number(o, "seed", 0));
  opts.input_grads = opt_bool(o, "inputGrads", false);
  opts.reuse_memory = opt_bool(o, "reuseMemory", true);
  opts.profile = opt_bool(o, "profile", false);
  opts.fuse = opt_bool(o, "fuse", true);
  opts.optimizer = read_optimizer(o, opts.optimizer, opts.param_weight_decay, opts.param_lr_scale);
  if (o.Has("emaDecay") && !o.Get("emaDecay").IsUndefined()) {
    const double d = opt_number(o, "emaDecay", 0);
    if (!(d >= 0 && d <= 1)) throw Napi::RangeError::New(env, "compile: options.emaDecay must be in [0, 1], got " + o.Get("emaDecay").ToString().Utf8Value());
    opts.ema = true;
    opts.ema_decay = static_cast<float>(d);
    opts.ema_warmup = opt_bool(o, "emaWarmup", false);
  }
  opts.precision = read_precision(o);
  opts.loss_scale = read_loss_scale(o);
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

  // Data parallel ({group, bucketBytes}, lib/engine/session.ts): the gradients are averaged across the
  // group's ranks before each update (native/dist/gradient_buckets.h).
  std::shared_ptr<GradientSync> sync;
  bool sync_batch_norm = false;
  if (o.Has("distributed") && !o.Get("distributed").IsUndefined()) {
#ifdef CRUNET_HAVE_GLOO
    if (!o.Get("distributed").IsObject()) throw Napi::TypeError::New(env, "compile: options.distributed must be an object {group, bucketBytes}");
    auto d = o.Get("distributed").As<Napi::Object>();
    if (device != "cpu")
      throw Napi::RangeError::New(env, "compile: distributed training on device '" + device + "' needs NCCL, which this build does not have; Gloo serves 'cpu' sessions");
    const double bucket = opt_number(d, "bucketBytes", 25 << 20);
    if (!(bucket >= 4 && bucket <= 1e12)) throw Napi::RangeError::New(env, "compile: options.distributed.bucketBytes must be in [4, 1e12]");
    sync = std::make_shared<dist::GradientBuckets>(group_from_js(d.Get("group")), static_cast<size_t>(bucket));
    sync_batch_norm = opt_bool(d, "syncBatchNorm", false);
    if (sync_batch_norm) opts.fuse = false;  // the synchronized statistics are computed outside oneDNN's fused kernel
#else
    throw Napi::Error::New(env, "compile: this build of crunet has no Gloo, so no distributed training (install libgloo-dev and rebuild the addon: npm run build:native)");
#endif
  }

  auto result = std::make_shared<Executor*>(nullptr);
  auto* ctor = env.GetInstanceData<Napi::FunctionReference>();
  return submit(
      env,
      [result, graph = std::move(graph), opts, &backend, device, cache, sync, sync_batch_norm] {
        if (cache->api) cache->loaded = cuda_algorithm_cache(cache->api, false, device, cache->path, cache->load_note);
        // A file that could not be read as ours is left untouched; otherwise new choices are written back,
        // also when the session then fails (e.g. out of memory for the arena): the searches were done.
        auto save = [&] {
          if (cache->api && cache->loaded >= 0)
            cache->saved = cuda_algorithm_cache(cache->api, true, device, cache->path, cache->save_note);
        };
        try {
          std::unique_ptr<Executor> ex(new Executor(backend, graph, opts));
          if (sync) ex->set_gradient_sync(sync);
          if (sync_batch_norm) ex->synchronize_batch_norm();
          *result = ex.release();
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
  if (!exec_ || dispose_pending_) throw Napi::Error::New(env, std::string(what) + ": this session was disposed");
  if (busy_) throw Napi::Error::New(env, std::string(what) + ": a call is already running on this session; await it before starting another");
  return *exec_;
}

// Marks the session busy until the returned guard dies (on the JS thread, with the finished job), and
// keeps the session object and the given arrays alive while native code uses their memory.
std::shared_ptr<void> SessionWrap::hold(const Napi::CallbackInfo& info, std::vector<Napi::Reference<Napi::Value>> refs) {
  busy_ = true;
  refs.push_back(Napi::Persistent(info.This()));
  auto owned = std::make_shared<std::vector<Napi::Reference<Napi::Value>>>(std::move(refs));
  return std::shared_ptr<void>(nullptr, [this, owned](void*) {
    busy_ = false;
    try {  // a deleter must not throw (std::terminate): a failure to free at exit is left to the OS
      if (dispose_pending_) free_executor(Env());  // dispose() was called while this call ran
    } catch (...) {
    }
  });
}

std::shared_ptr<FeedCopy> SessionWrap::read_feeds(const Napi::Value& v) {
  Napi::Env env = v.Env();
  const auto& g = exec_->graph();
  if (!v.IsArray()) throw Napi::TypeError::New(env, "feeds: expected an array with one typed array per graph input");
  auto a = v.As<Napi::Array>();
  std::vector<const ValueInfo*> inputs;
  for (auto& val : g.values)
    if (val.producer < 0) inputs.push_back(&val);
  if (a.Length() != inputs.size())
    throw Napi::TypeError::New(env, "feeds: expected " + std::to_string(inputs.size()) + " arrays (one per graph input), got " + std::to_string(a.Length()));
  auto feeds = std::make_shared<FeedCopy>();
  feeds->data.resize(inputs.size());
  for (auto* in : inputs) {
    Napi::Value x = a.Get(static_cast<uint32_t>(in->input_index));
    bool f32 = in->dtype == DType::f32;
    auto want_type = f32 ? napi_float32_array : napi_int32_array;
    if (!x.IsTypedArray() || x.As<Napi::TypedArray>().TypedArrayType() != want_type)
      throw Napi::TypeError::New(env, "input " + in->name + ": expected a " + (f32 ? "Float32Array" : "Int32Array") +
                                          ", got " + js_type_name(x));
    auto t = x.As<Napi::TypedArray>();
    size_t want = static_cast<size_t>(numel(in->shape));
    if (t.ElementLength() != want)
      throw Napi::RangeError::New(env, "input " + in->name + ": expected " + std::to_string(want) + " elements (shape " +
                                           shape_str(in->shape) + "), got " + std::to_string(t.ElementLength()));
    // The element pointer from napi_get_typedarray_info: unlike ArrayBuffer().Data() it also works for
    // arrays over a SharedArrayBuffer (what worker-thread loaders hand out).
    const void* src = f32 ? static_cast<const void*>(x.As<Napi::Float32Array>().Data()) : x.As<Napi::Int32Array>().Data();
    auto& copy = feeds->data[in->input_index];
    copy.resize(want);
    std::memcpy(copy.data(), src, want * 4);
  }
  for (auto& d : feeds->data) feeds->ptrs.push_back(d.data());
  return feeds;
}

Napi::Value SessionWrap::step(const Napi::CallbackInfo& info) {
  fault_point("step");
  Napi::Env env = info.Env();
  Executor& ex = live(env, "step");
  auto feeds = read_feeds(info[0]);
  float lr = info[1].IsNumber() ? info[1].As<Napi::Number>().FloatValue() : ex.optimizer().lr;
  const bool accumulate = info[2].IsBoolean() && info[2].As<Napi::Boolean>().Value();
  auto stats = std::make_shared<StepOutcome>();
  auto guard = hold(info, {});
  return submit(
      env, [&ex, feeds, lr, accumulate, stats] { *stats = ex.step(feeds->ptrs, lr, accumulate); },
      [stats, guard](Napi::Env env) -> Napi::Value {
        auto r = Napi::Object::New(env);
        r.Set("loss", stats->loss);
        r.Set("correct", stats->correct);
        r.Set("topkCorrect", stats->topk_correct);
        if (stats->grad_norm >= 0) r.Set("gradNorm", stats->grad_norm);
        r.Set("skipped", stats->skipped);
        r.Set("lossScale", stats->loss_scale);
        return r;
      });
}

Napi::Value SessionWrap::forward(const Napi::CallbackInfo& info) {
  fault_point("forward");
  Napi::Env env = info.Env();
  Executor& ex = live(env, "forward");
  std::vector<Napi::Reference<Napi::Value>> refs;
  auto feeds = read_feeds(info[0]);
  const bool ema = info[1].IsBoolean() && info[1].As<Napi::Boolean>().Value();
  if (ema && !ex.has_ema()) throw Napi::Error::New(env, "forward: this session keeps no moving average of its weights (compile it with ema)");
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
      env, [&ex, feeds, ptrs, ema] { ex.forward(feeds->ptrs, ptrs, ema); },
      [out_ref, guard](Napi::Env) -> Napi::Value { return out_ref->Value(); });
}

Napi::Value SessionWrap::gradients(const Napi::CallbackInfo& info) {
  fault_point("gradients");
  Napi::Env env = info.Env();
  Executor& ex = live(env, "gradients");
  const auto& g = ex.graph();
  auto feeds = read_feeds(info[0]);
  if (g.outputs.empty()) throw Napi::Error::New(env, "gradients: the graph has no outputs");
  const auto& target = g.values[g.outputs[0]];
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array ||
      info[1].As<Napi::TypedArray>().ElementLength() != static_cast<size_t>(numel(target.shape)))
    throw Napi::TypeError::New(env, "gradients: seed must be a Float32Array of " + std::to_string(numel(target.shape)) +
                                        " elements (the shape of output " + target.name + ", " + shape_str(target.shape) + ")");
  auto seed_js = info[1].As<Napi::Float32Array>();
  auto seed = std::make_shared<std::vector<float>>(seed_js.Data(), seed_js.Data() + seed_js.ElementLength());  // copied, as the feeds

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
  auto guard = hold(info, {});
  return submit(
      env, [&ex, feeds, seed, out_p, in_p, p_p] { ex.gradients(feeds->ptrs, seed->data(), out_p, in_p, p_p); },
      [res_ref, guard](Napi::Env) -> Napi::Value { return res_ref->Value(); });
}

Napi::Value SessionWrap::params(const Napi::CallbackInfo& info) {
  fault_point("params");
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
  fault_point("values");
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
  fault_point("getParameter");
  Executor& ex = live(info.Env(), "getParameter");
  int i = param_index(info[0]);
  auto a = new_f32(info.Env(), ex.graph().params[i].shape);
  float* p = a.Data();
  run_sync([&] { ex.read_param(i, p); });
  return a;
}

// The optimizer state buffer index (info[1]) that the update rule has.
int state_index(const Napi::Value& v, const Executor& ex) {
  const int n = state_buffers(ex.optimizer().rule);
  if (!v.IsNumber() || v.As<Napi::Number>().Int32Value() < 0 || v.As<Napi::Number>().Int32Value() >= n)
    throw Napi::RangeError::New(v.Env(), "optimizer state index must be an integer in [0, " + std::to_string(n) + ")");
  return v.As<Napi::Number>().Int32Value();
}

Napi::Value SessionWrap::get_optimizer_state(const Napi::CallbackInfo& info) {
  fault_point("getOptimizerState");
  Executor& ex = live(info.Env(), "getOptimizerState");
  int i = param_index(info[0]);
  int k = state_index(info[1], ex);
  auto a = new_f32(info.Env(), ex.graph().params[i].shape);
  float* p = a.Data();
  try {
    run_sync([&] { ex.read_state(i, k, p); });
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
  return a;
}

Napi::Value SessionWrap::get_updates(const Napi::CallbackInfo& info) {
  fault_point("getUpdates");
  return Napi::Number::New(info.Env(), static_cast<double>(live(info.Env(), "getUpdates").updates()));
}

Napi::Value SessionWrap::set_updates(const Napi::CallbackInfo& info) {
  fault_point("setUpdates");
  Executor& ex = live(info.Env(), "setUpdates");
  const double u = info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1;
  if (!(u >= 0 && u <= 9007199254740991.0 && u == std::floor(u)))
    throw Napi::RangeError::New(info.Env(), "setUpdates: expected a non-negative integer, got " + info[0].ToString().Utf8Value());
  ex.set_updates(static_cast<int64_t>(u));
  return info.Env().Undefined();
}

Napi::Value SessionWrap::get_ema(const Napi::CallbackInfo& info) {
  fault_point("getEma");
  Executor& ex = live(info.Env(), "getEma");
  int i = param_index(info[0]);
  if (!ex.has_ema()) throw Napi::Error::New(info.Env(), "getEma: this session keeps no moving average of its weights (compile it with ema)");
  auto a = new_f32(info.Env(), ex.graph().params[i].shape);
  float* p = a.Data();
  run_sync([&] { ex.read_ema(i, p); });
  return a;
}

namespace {
// The parameters that batch-norm nodes use as running variance (their fourth slot).
std::set<int> running_variance_params(const TypedGraph& g) {
  std::set<int> r;
  for (const auto& n : g.nodes)
    if (n.spec.op == OpKind::batch_norm && n.params.size() == 4) r.insert(n.params[3]);
  return r;
}

const float* checked_values(const Napi::CallbackInfo& info, const ParamDesc& p, const char* what, size_t arg = 1) {
  if (!info[arg].IsTypedArray() || info[arg].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(info.Env(), std::string(what) + " " + p.name + ": expected a Float32Array");
  auto a = info[arg].As<Napi::Float32Array>();
  if (a.ElementLength() != static_cast<size_t>(numel(p.shape)))
    throw Napi::RangeError::New(info.Env(), std::string(what) + " " + p.name + ": expected " + std::to_string(numel(p.shape)) +
                                                " values (shape " + shape_str(p.shape) + "), got " + std::to_string(a.ElementLength()));
  return a.Data();
}
}  // namespace

Napi::Value SessionWrap::set_parameter(const Napi::CallbackInfo& info) {
  fault_point("setParameter");
  Executor& ex = live(info.Env(), "setParameter");
  int i = param_index(info[0]);
  const ParamDesc& p = ex.graph().params[i];
  const float* src = checked_values(info, p, "setParameter");
  // A NaN or infinite weight would train silently to garbage (a fused BN+ReLU maps NaN to 0), and a
  // negative running variance makes batch norm divide by the square root of a negative number. A
  // checkpoint restore comes through here too, so a damaged checkpoint is refused the same way.
  const bool variance = running_variance_params(ex.graph()).count(i) > 0;
  const size_t n = static_cast<size_t>(numel(p.shape));
  for (size_t k = 0; k < n; k++) {
    if (!std::isfinite(src[k]))
      throw Napi::RangeError::New(info.Env(), "setParameter " + p.name + ": element " + std::to_string(k) + " is " +
                                                  (std::isnan(src[k]) ? "NaN" : "infinite") + "; the parameter was left unchanged");
    if (variance && src[k] < 0)
      throw Napi::RangeError::New(info.Env(), "setParameter " + p.name + ": element " + std::to_string(k) + " is " +
                                                  std::to_string(src[k]) + ", but a running variance must be >= 0; the parameter was left unchanged");
  }
  run_sync([&] { ex.write_param(i, src); });
  return info.Env().Undefined();
}

// Optimizer state and moving averages: finite values only, as parameters; nothing changes on refusal.
void check_finite(const Napi::CallbackInfo& info, const float* src, const ParamDesc& p, const char* what, const char* kept) {
  for (size_t k = 0, n = static_cast<size_t>(numel(p.shape)); k < n; k++)
    if (!std::isfinite(src[k]))
      throw Napi::RangeError::New(info.Env(), std::string(what) + " " + p.name + ": element " + std::to_string(k) + " is " +
                                                  (std::isnan(src[k]) ? "NaN" : "infinite") + "; " + kept + " was left unchanged");
}

Napi::Value SessionWrap::set_optimizer_state(const Napi::CallbackInfo& info) {
  fault_point("setOptimizerState");
  Executor& ex = live(info.Env(), "setOptimizerState");
  int i = param_index(info[0]);
  int k = state_index(info[1], ex);
  const float* src = checked_values(info, ex.graph().params[i], "setOptimizerState", 2);
  check_finite(info, src, ex.graph().params[i], "setOptimizerState", "the optimizer state");
  // AdamW's and LAMB's exp_avg_sq is a mean of squares: a negative one would make its square root NaN.
  if (ex.optimizer().rule != UpdateRule::sgd && k == 1)
    for (size_t j = 0, n = static_cast<size_t>(numel(ex.graph().params[i].shape)); j < n; j++)
      if (src[j] < 0)
        throw Napi::RangeError::New(info.Env(), "setOptimizerState " + ex.graph().params[i].name + ": element " + std::to_string(j) +
                                                    " of exp_avg_sq is negative; the optimizer state was left unchanged");
  try {
    run_sync([&] { ex.write_state(i, k, src); });
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
  return info.Env().Undefined();
}

Napi::Value SessionWrap::set_ema(const Napi::CallbackInfo& info) {
  fault_point("setEma");
  Executor& ex = live(info.Env(), "setEma");
  int i = param_index(info[0]);
  if (!ex.has_ema()) throw Napi::Error::New(info.Env(), "setEma: this session keeps no moving average of its weights (compile it with ema)");
  const float* src = checked_values(info, ex.graph().params[i], "setEma");
  check_finite(info, src, ex.graph().params[i], "setEma", "the moving average");
  run_sync([&] { ex.write_ema(i, src); });
  return info.Env().Undefined();
}

Napi::Value SessionWrap::set_optimizer(const Napi::CallbackInfo& info) {
  fault_point("setOptimizer");
  Executor& ex = live(info.Env(), "setOptimizer");
  if (!info[0].IsObject()) throw Napi::TypeError::New(info.Env(), "setOptimizer: expected an object");
  std::vector<float> wd = {}, lr_scale = {};
  const OptimizerConfig cfg = read_optimizer(info[0].As<Napi::Object>(), ex.optimizer(), wd, lr_scale);
  if (cfg.rule != ex.optimizer().rule)
    throw Napi::RangeError::New(info.Env(), "setOptimizer: the optimizer's type is fixed at compile time (its state buffers were made for it)");
  const size_t np = ex.graph().params.size();
  if ((!wd.empty() && wd.size() != np) || (!lr_scale.empty() && lr_scale.size() != np))
    throw Napi::RangeError::New(info.Env(), "setOptimizer: expected paramWeightDecay and paramLrScale with one entry per parameter (" + std::to_string(np) + ")");
  ex.set_optimizer(cfg, wd, lr_scale);
  return info.Env().Undefined();
}

// {scale, growthTracker}, or null for a session compiled without loss scaling.
Napi::Value SessionWrap::loss_scaler(const Napi::CallbackInfo& info) {
  fault_point("lossScaler");
  Napi::Env env = info.Env();
  Executor& ex = live(env, "lossScaler");
  if (!ex.loss_scaling()) return env.Null();
  LossScalerState st;
  run_sync([&] { st = ex.loss_scaler(); });
  auto o = Napi::Object::New(env);
  o.Set("scale", st.scale);
  o.Set("growthTracker", st.growth_tracker);
  return o;
}

Napi::Value SessionWrap::set_loss_scaler(const Napi::CallbackInfo& info) {
  fault_point("setLossScaler");
  Napi::Env env = info.Env();
  Executor& ex = live(env, "setLossScaler");
  if (!info[0].IsObject()) throw Napi::TypeError::New(env, "setLossScaler: expected an object {scale, growthTracker}");
  auto o = info[0].As<Napi::Object>();
  // Both fields are required (no silent default); the scaler itself judges the values (loss_scaler.h).
  for (const char* k : {"scale", "growthTracker"})
    if (!o.Get(k).IsNumber())
      throw Napi::TypeError::New(env, std::string("setLossScaler: state.") + k + ": expected a number, but received " + o.Get(k).ToString().Utf8Value());
  const double tracker = o.Get("growthTracker").As<Napi::Number>().DoubleValue();
  if (tracker != std::floor(tracker) || tracker < 0 || tracker > 2147483647)
    throw Napi::RangeError::New(env, "setLossScaler: state.growthTracker: expected an integer in [0, 2^31), but received " + o.Get("growthTracker").ToString().Utf8Value());
  const LossScalerState st{static_cast<float>(o.Get("scale").As<Napi::Number>().DoubleValue()), static_cast<int>(tracker)};
  try {
    run_sync([&] { ex.set_loss_scaler(st); });
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string("setLossScaler: ") + e.what());
  }
  return env.Undefined();
}

Napi::Value SessionWrap::memory(const Napi::CallbackInfo& info) {
  fault_point("memory");
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
  fault_point("profile");
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
  fault_point("resetProfile");
  live(info.Env(), "resetProfile").reset_profile();
  return info.Env().Undefined();
}

Napi::Value SessionWrap::set_profiling(const Napi::CallbackInfo& info) {
  fault_point("setProfiling");
  Napi::Env env = info.Env();
  if (!info[0].IsBoolean()) throw Napi::TypeError::New(env, "setProfiling: expected a boolean");
  live(env, "setProfiling").set_profile(info[0].As<Napi::Boolean>().Value());
  return env.Undefined();
}

Napi::Value SessionWrap::dispose(const Napi::CallbackInfo& info) {
  fault_point("dispose");
  Napi::Env env = info.Env();
  if (!exec_) return env.Undefined();  // disposing twice is harmless, as in tfjs
  if (busy_) {
    // The running call finishes (or fails) normally; the memory is freed as it completes (hold()).
    dispose_pending_ = true;
    return env.Undefined();
  }
  free_executor(env);
  return env.Undefined();
}

void SessionWrap::free_executor(Napi::Env env) {
  dispose_pending_ = false;
  Executor* e = exec_.release();
  if (!e) return;
  run_sync([e] { delete e; });
  Napi::MemoryManagement::AdjustExternalMemory(env, -external_bytes_);
  external_bytes_ = 0;
}

}  // namespace crunet::addon
