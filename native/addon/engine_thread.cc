#include "engine_thread.h"

#include <condition_variable>
#include <deque>
#include <exception>
#include <future>
#include <mutex>
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
  bool post(std::function<void()> f) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return false;
      queue_.push_back(std::move(f));
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
        f = std::move(queue_.front());
        queue_.pop_front();
      }
      f();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_, dropped_;
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
  auto* job = new Job{Napi::Promise::Deferred::New(env), std::move(work), std::move(finish), {}, {}, false};
  Napi::Promise promise = job->deferred.Promise();
  job->tsfn = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}), "crunet", 0, 1);
  const bool queued = EngineThread::get().post([job] {
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
      try {
        owned->deferred.Resolve(owned->finish(env));
      } catch (const Napi::Error& e) {
        owned->deferred.Reject(e.Value());
      } catch (const std::exception& e) {
        owned->deferred.Reject(Napi::Error::New(env, e.what()).Value());
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
  std::promise<void> done;
  const bool queued = EngineThread::get().post([&] {
    try {
      work();
      done.set_value();
    } catch (...) {
      done.set_exception(std::current_exception());
    }
  });
  if (!queued) return work();  // shut down: no engine thread any more, so no concurrent backend work either
  done.get_future().get();
}

void shutdown_engine_thread() { EngineThread::get().shutdown(); }

}  // namespace crunet::addon
