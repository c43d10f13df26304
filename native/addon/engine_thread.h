// The engine thread: one native thread that runs ALL backend work. oneDNN uses OpenMP, and every
// calling thread gets its own OpenMP team and thread count, so running work from the libuv pool would
// multiply teams (and thread counts set on one thread would not apply to the others). Jobs resolve their JS promise through a thread-safe function.
#pragma once
#include <napi.h>

#include <functional>
#include <memory>

namespace crunet::addon {

// Runs `work` on the engine thread; then `finish` on the JS thread turns its result into a JS value
// that resolves the returned promise. An exception from either rejects it with an Error.
Napi::Promise submit(Napi::Env env, std::function<void()> work, std::function<Napi::Value(Napi::Env)> finish);

// Like submit, but `work` runs wherever `post` queues it (a process group's communication thread);
// `post` returns false when it could not queue it.
Napi::Promise submit_via(Napi::Env env, const std::function<bool(std::function<void()>)>& post, std::function<void()> work,
                         std::function<Napi::Value(Napi::Env)> finish);

// Runs `work` on the engine thread and waits for it (for short queries such as thread counts); after
// shutdown_engine_thread(), on the calling thread.
void run_sync(const std::function<void()>& work);

// Stops the engine thread before the process exits (lib/engine/native.ts calls it from process.on('exit')):
// queued jobs are dropped, the running one stops at its next kernel boundary, the thread is joined. Static
// destructors then never run under a oneDNN primitive (they used to: SIGSEGV at exit during a step).
void shutdown_engine_thread();

}  // namespace crunet::addon
