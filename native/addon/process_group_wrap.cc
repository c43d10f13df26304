// See process_group_wrap.h. Arguments arrive checked by lib/dist/process-group.ts; the checks here only
// keep a direct caller from crashing the process.
#include "process_group_wrap.h"

#include <cstring>
#include <thread>

#include "engine_thread.h"

namespace crunet::addon {
namespace {

class ProcessGroupWrap : public Napi::ObjectWrap<ProcessGroupWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "NativeProcessGroup",
                       {InstanceMethod("allreduce", &ProcessGroupWrap::allreduce), InstanceMethod("broadcast", &ProcessGroupWrap::broadcast),
                        InstanceMethod("allgather", &ProcessGroupWrap::allgather), InstanceMethod("barrier", &ProcessGroupWrap::barrier),
                        InstanceMethod("destroy", &ProcessGroupWrap::destroy)});
  }
  explicit ProcessGroupWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ProcessGroupWrap>(info) {
    if (info.Length() != 1 || !info[0].IsExternal())
      throw Napi::TypeError::New(info.Env(), "NativeProcessGroup cannot be constructed directly: use initProcessGroup()");
    auto* g = info[0].As<Napi::External<std::shared_ptr<dist::Group>>>().Data();
    group_ = *g;
  }
  ~ProcessGroupWrap() override { release(); }

  std::shared_ptr<dist::Group> group() const { return group_; }

 private:
  dist::Group& live(Napi::Env env, const char* what) {
    if (!group_) throw Napi::Error::New(env, std::string(what) + ": this process group was destroyed");
    return *group_;
  }

  // Runs `work` on the group's thread; the group stays alive until the promise settles.
  Napi::Promise run(Napi::Env env, std::function<void(dist::ProcessGroup&)> work, std::function<Napi::Value(Napi::Env)> finish) {
    std::shared_ptr<dist::Group> g = group_;
    dist::Group* raw = g.get();
    // The job never holds the last reference on the group's own thread (that thread would join itself):
    // `work` and `finish` are destroyed on the JS thread (engine_thread.cc's Job).
    return submit_via(
        env, [raw](std::function<void()> f) { raw->comm.post(std::move(f)); return true; },
        [g, work = std::move(work)] { work(*g->pg); }, std::move(finish));
  }

  // The typed array's bytes, copied: the caller's array is written back on the JS thread when done.
  struct Held {
    Napi::Reference<Napi::TypedArray> array;
    std::vector<char> bytes;
  };
  static std::shared_ptr<Held> hold(const Napi::TypedArray& a) {
    auto h = std::make_shared<Held>();
    h->array = Napi::Persistent(a);
    const char* p = static_cast<const char*>(a.ArrayBuffer().Data()) + a.ByteOffset();
    h->bytes.assign(p, p + a.ByteLength());
    return h;
  }
  static Napi::Value write_back(Napi::Env env, Held& h) {
    Napi::TypedArray a = h.array.Value();
    if (a.ByteLength() == h.bytes.size()) std::memcpy(static_cast<char*>(a.ArrayBuffer().Data()) + a.ByteOffset(), h.bytes.data(), h.bytes.size());
    return env.Undefined();
  }

  Napi::Value allreduce(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    live(env, "allreduce");
    if (!info[0].IsTypedArray()) throw Napi::TypeError::New(env, "allreduce: expected a Float32Array or Float64Array");
    auto a = info[0].As<Napi::TypedArray>();
    dist::DType dt;
    if (a.TypedArrayType() == napi_float32_array) dt = dist::DType::f32;
    else if (a.TypedArrayType() == napi_float64_array) dt = dist::DType::f64;
    else throw Napi::TypeError::New(env, "allreduce: expected a Float32Array or Float64Array");
    const std::string op = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "sum";
    dist::ReduceOp rop = op == "max" ? dist::ReduceOp::max : op == "min" ? dist::ReduceOp::min : dist::ReduceOp::sum;
    if (op != "sum" && op != "max" && op != "min") throw Napi::RangeError::New(env, "allreduce: expected op 'sum', 'max' or 'min'");
    auto h = hold(a);
    const size_t count = a.ElementLength();
    return run(
        env, [h, count, dt, rop](dist::ProcessGroup& pg) { pg.allreduce(h->bytes.data(), count, dt, rop); },
        [h](Napi::Env env) { return write_back(env, *h); });
  }

  Napi::Value broadcast(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    dist::Group& g = live(env, "broadcast");
    if (!info[0].IsTypedArray()) throw Napi::TypeError::New(env, "broadcast: expected a typed array");
    const int root = info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : 0;
    if (root < 0 || root >= g.world_size) throw Napi::RangeError::New(env, "broadcast: root out of range");
    auto h = hold(info[0].As<Napi::TypedArray>());
    return run(
        env, [h, root](dist::ProcessGroup& pg) { pg.broadcast(h->bytes.data(), h->bytes.size(), root); },
        [h](Napi::Env env) { return write_back(env, *h); });
  }

  Napi::Value allgather(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    live(env, "allgather");
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      throw Napi::TypeError::New(env, "allgather: expected a Uint8Array");
    auto a = info[0].As<Napi::Uint8Array>();
    auto in = std::make_shared<std::vector<char>>(reinterpret_cast<const char*>(a.Data()), reinterpret_cast<const char*>(a.Data()) + a.ByteLength());
    auto out = std::make_shared<std::vector<std::vector<char>>>();
    return run(
        env, [in, out](dist::ProcessGroup& pg) { *out = pg.allgather(in->data(), in->size()); },
        [out](Napi::Env env) -> Napi::Value {
          auto arr = Napi::Array::New(env, out->size());
          for (size_t r = 0; r < out->size(); r++) {
            auto b = Napi::Uint8Array::New(env, (*out)[r].size());
            if (!(*out)[r].empty()) std::memcpy(b.Data(), (*out)[r].data(), (*out)[r].size());
            arr.Set(static_cast<uint32_t>(r), b);
          }
          return arr;
        });
  }

  Napi::Value barrier(const Napi::CallbackInfo& info) {
    live(info.Env(), "barrier");
    return run(info.Env(), [](dist::ProcessGroup& pg) { pg.barrier(); }, [](Napi::Env env) { return env.Undefined(); });
  }

  Napi::Value destroy(const Napi::CallbackInfo& info) {
    release();
    return info.Env().Undefined();
  }

  // Dropping the group joins its thread, which may be inside a collective until the timeout: done on a
  // thread of its own so that the JS thread never waits. A session may still hold the group.
  void release() {
    if (!group_) return;
    std::thread([g = std::move(group_)]() mutable { g.reset(); }).detach();
  }

  std::shared_ptr<dist::Group> group_;
};

thread_local Napi::FunctionReference* t_ctor = nullptr;  // per JS environment (each runs on its own thread)

Napi::Value init_process_group(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw Napi::TypeError::New(env, "initProcessGroup: expected options {rank, worldSize, masterAddr, masterPort, timeoutMs}");
  auto o = info[0].As<Napi::Object>();
  auto num = [&](const char* k) {
    if (!o.Get(k).IsNumber()) throw Napi::TypeError::New(env, std::string("initProcessGroup: expected ") + k + " to be a number");
    return o.Get(k).As<Napi::Number>().Int64Value();
  };
  dist::GroupOptions opts;
  opts.rank = static_cast<int>(num("rank"));
  opts.world_size = static_cast<int>(num("worldSize"));
  opts.master_port = static_cast<int>(num("masterPort"));
  opts.timeout = std::chrono::milliseconds(num("timeoutMs"));
  if (!o.Get("masterAddr").IsString()) throw Napi::TypeError::New(env, "initProcessGroup: expected masterAddr to be a string");
  opts.master_addr = o.Get("masterAddr").As<Napi::String>().Utf8Value();
  if (opts.world_size < 1 || opts.rank < 0 || opts.rank >= opts.world_size || opts.master_port < 1 || opts.master_port > 65535 || opts.timeout.count() < 1)
    throw Napi::RangeError::New(env, "initProcessGroup: rank, worldSize, masterPort or timeoutMs out of range");
  auto g = std::make_shared<dist::Group>();
  g->rank = opts.rank;
  g->world_size = opts.world_size;
  g->timeout = opts.timeout;
  dist::Group* raw = g.get();
  auto holder = std::make_shared<std::shared_ptr<dist::Group>>(g);
  return submit_via(
      env, [raw](std::function<void()> f) { raw->comm.post(std::move(f)); return true; },
      [raw, opts] { raw->pg = std::make_unique<dist::ProcessGroup>(opts); },
      [holder](Napi::Env env) -> Napi::Value {
        auto* ext = new std::shared_ptr<dist::Group>(*holder);
        Napi::Value obj = t_ctor->New({Napi::External<std::shared_ptr<dist::Group>>::New(env, ext, [](Napi::Env, std::shared_ptr<dist::Group>* p) { delete p; })});
        return obj;
      });
  // A failed rendezvous drops `holder` with the job on the JS thread: the thread is idle then, so the
  // join in ~Group returns at once.
}

}  // namespace

void define_process_group(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = ProcessGroupWrap::define(env);
  t_ctor = new Napi::FunctionReference(Napi::Persistent(ctor));
  exports.Set("NativeProcessGroup", ctor);
  exports.Set("initProcessGroup", Napi::Function::New(env, init_process_group, "initProcessGroup"));
}

std::shared_ptr<dist::Group> group_from_js(const Napi::Value& v) {
  if (!v.IsObject() || !t_ctor || !v.As<Napi::Object>().InstanceOf(t_ctor->Value()))
    throw Napi::TypeError::New(v.Env(), "compile: expected options.distributed.group to be a process group (crunet.dist.initProcessGroup()), but received another value");
  auto g = ProcessGroupWrap::Unwrap(v.As<Napi::Object>())->group();
  if (!g) throw Napi::Error::New(v.Env(), "compile: the process group in options.distributed.group was destroyed");
  return g;
}

}  // namespace crunet::addon
