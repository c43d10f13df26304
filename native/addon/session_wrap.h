// crunet.Session on the native side: owns one Executor; every call that touches backend memory runs
// on the engine thread. Validates feeds (type, length) on the JS thread before going async.
#pragma once
#include <napi.h>

#include <atomic>
#include <memory>

#include "../core/executor.h"

namespace crunet::addon {

// A batch copied out of the caller's typed arrays: one buffer per graph input, and pointers into them.
struct FeedCopy {
  std::vector<std::vector<float>> data;  // f32 values, or i32 labels bit for bit
  Feeds ptrs;
};

class SessionWrap : public Napi::ObjectWrap<SessionWrap> {
 public:
  static Napi::Function define(Napi::Env env);
  static Napi::Value compile(const Napi::CallbackInfo& info);  // compile(graph, options): Promise<Session>
  explicit SessionWrap(const Napi::CallbackInfo& info);
  ~SessionWrap() override;

 private:
  Napi::Value step(const Napi::CallbackInfo& info);
  Napi::Value forward(const Napi::CallbackInfo& info);
  Napi::Value gradients(const Napi::CallbackInfo& info);
  Napi::Value params(const Napi::CallbackInfo& info);
  Napi::Value values(const Napi::CallbackInfo& info);
  Napi::Value get_parameter(const Napi::CallbackInfo& info);
  Napi::Value set_parameter(const Napi::CallbackInfo& info);
  Napi::Value get_optimizer_state(const Napi::CallbackInfo& info);
  Napi::Value set_optimizer_state(const Napi::CallbackInfo& info);
  Napi::Value get_updates(const Napi::CallbackInfo& info);
  Napi::Value set_updates(const Napi::CallbackInfo& info);
  Napi::Value get_ema(const Napi::CallbackInfo& info);
  Napi::Value set_ema(const Napi::CallbackInfo& info);
  Napi::Value set_optimizer(const Napi::CallbackInfo& info);
  Napi::Value loss_scaler(const Napi::CallbackInfo& info);
  Napi::Value set_loss_scaler(const Napi::CallbackInfo& info);
  Napi::Value memory(const Napi::CallbackInfo& info);
  Napi::Value profile(const Napi::CallbackInfo& info);
  Napi::Value reset_profile(const Napi::CallbackInfo& info);
  Napi::Value set_profiling(const Napi::CallbackInfo& info);
  Napi::Value dispose(const Napi::CallbackInfo& info);

  Executor& live(Napi::Env env, const char* what);  // throws if disposed or busy
  std::shared_ptr<void> hold(const Napi::CallbackInfo& info, std::vector<Napi::Reference<Napi::Value>> refs);
  // Checks the feeds and copies them (on the JS thread): the caller may refill its arrays as soon as the
  // call returns, while the engine thread still works on the batch.
  std::shared_ptr<FeedCopy> read_feeds(const Napi::Value& v);
  int param_index(const Napi::Value& v);
  void free_executor(Napi::Env env);  // on the engine thread; the session is disposed afterwards

  std::unique_ptr<Executor> exec_;
  std::atomic<bool> busy_{false};
  bool dispose_pending_ = false;  // dispose() came while a call ran: free when it completes
  int64_t external_bytes_ = 0;
};

}  // namespace crunet::addon
