#include "engine_thread.h"

#include <condition_variable>
#include <deque>
#include <exception>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "../core/executor.h"

namespace crunet::addon {
namespace {

class EngineThread {
 public:
  // Never destroyed: exit() runs static destructors, and joining there would wait for every queued job.
  // shutdown() is the orderly stop, called before the process exits.
  static EngineThread& get() {
    static EngineThread* t = new EngineThread;
    return *t;
  }
  // False once shut down: the work was not queued.
  // `on_drop` runs instead of `f` when shutdown drops the job: run_sync's waiter must be woken, or a
  // worker thread blocked in it would hang the process's exit (Node joins worker threads).
  bool post(std::function<void()> f, std::function<void()> on_drop = {}) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return false;
      queue_.push_back({std::move(f), std::move(on_drop)});
    }
    cv_.notify_one();
    return true;
  }
  // Drops the queued jobs, makes the running one stop at its next kernel boundary, and joins the thread.
  void shutdown() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
      stop_ = true;
      dropped_.swap(queue_);  // kept, not destroyed: their JS references must not be released at exit
    }
    for (Item& item : dropped_)
      if (item.on_drop) item.on_drop();
    cancel_all_work();
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

 private:
  EngineThread() : thread_([this] { loop(); }) {}
  void loop() {
    for (;;) {
      std::function<void()> f;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (stop_) return;
        f = std::move(queue_.front().run);
        queue_.pop_front();
      }
      f();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  struct Item {
    std::function<void()> run, on_drop;
  };
  std::deque<Item> queue_, dropped_;
  bool stop_ = false;
  std::thread thread_;
};

struct Job {
  Napi::Promise::Deferred deferred;
  std::function<void()> work;
  std::function<Napi::Value(Napi::Env)> finish;
  Napi::ThreadSafeFunction tsfn;
  std::string error;
  bool failed = false;
};

}  // namespace

Napi::Promise submit(Napi::Env env, std::function<void()> work, std::function<Napi::Value(Napi::Env)> finish) {
  return submit_via(env, [](std::function<void()> f) { return EngineThread::get().post(std::move(f)); }, std::move(work), std::move(finish));
}

Napi::Promise submit_via(Napi::Env env, const std::function<bool(std::function<void()>)>& post, std::function<void()> work,
                         std::function<Napi::Value(Napi::Env)> finish) {
  auto* job = new Job{Napi::Promise::Deferred::New(env), std::move(work), std::move(finish), {}, {}, false};
  Napi::Promise promise = job->deferred.Promise();
  job->tsfn = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}), "crunet", 0, 1);
  const bool queued = post([job] {
    try {
      job->work();
    } catch (const std::exception& e) {
      job->failed = true;
      job->error = e.what();
    } catch (...) {
      job->failed = true;
      job->error = "unknown native error";
    }
    job->tsfn.BlockingCall([job](Napi::Env env, Napi::Function) {
      std::unique_ptr<Job> owned(job);
      owned->tsfn.Release();
      if (owned->failed) {
        owned->deferred.Reject(Napi::Error::New(env, owned->error).Value());
        return;
      }
      // Nothing may escape into the thread-safe function's C frames: a throw from Reject itself (the
      // environment shutting down) is dropped.
      try {
        try {
          owned->deferred.Resolve(owned->finish(env));
        } catch (const Napi::Error& e) {
          owned->deferred.Reject(e.Value());
        } catch (const std::exception& e) {
          owned->deferred.Reject(Napi::Error::New(env, e.what()).Value());
        }
      } catch (...) {
      }
    });
  });
  if (!queued) {
    job->tsfn.Release();
    job->deferred.Reject(Napi::Error::New(env, "crunet: the engine thread has stopped (the process is exiting)").Value());
    delete job;
  }
  return promise;
}

void run_sync(const std::function<void()>& work) {
  auto done = std::make_shared<std::promise<void>>();
  const bool queued = EngineThread::get().post(
      [&work, done] {
        try {
          work();
          done->set_value();
        } catch (...) {
          done->set_exception(std::current_exception());
        }
      },
      [done] { done->set_exception(std::make_exception_ptr(std::runtime_error("crunet: the engine thread has stopped (the process is exiting)"))); });
  if (!queued) {
    // Shut down: no engine thread any more. Several threads (workers, finalizers) may still get here, so
    // they take turns, as they would have on the engine thread.
    static std::mutex after_shutdown;
    std::lock_guard<std::mutex> lock(after_shutdown);
    return work();
  }
  done->get_future().get();
}

void shutdown_engine_thread() { EngineThread::get().shutdown(); }

}  // namespace crunet::addon
