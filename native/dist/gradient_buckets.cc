// See gradient_buckets.h.
#include "gradient_buckets.h"

#include <algorithm>
#include <cstring>

#include "../core/error.h"
#include "../core/executor.h"

namespace crunet::dist {

GradientBuckets::GradientBuckets(std::shared_ptr<Group> group, size_t bucket_bytes) : group_(std::move(group)), bucket_bytes_(std::max<size_t>(bucket_bytes, 4)) {}

GradientBuckets::~GradientBuckets() { drain(); }  // cancelled: the process is exiting; the jobs own their state

void GradientBuckets::bind(const std::vector<Slot>& slots) {
  bucket_of_.assign(slots.size(), -1);
  buckets_.clear();
  for (size_t i = 0; i < slots.size(); i++) {
    // A new bucket once the current one holds bucket_bytes (a parameter larger than that is a bucket alone).
    if (buckets_.empty() || buckets_.back()->count * 4 >= bucket_bytes_) buckets_.push_back(std::make_shared<Bucket>());
    Bucket& b = *buckets_.back();
    b.slots.push_back(slots[i]);
    b.count += slots[i].count;
    bucket_of_[i] = static_cast<int>(buckets_.size()) - 1;
  }
  for (auto& b : buckets_) {
    b->flat.resize(b->count);
    b->pending = static_cast<int>(b->slots.size());
  }
}

void GradientBuckets::ready(int i) {
  if (!aborted_.empty()) return;
  const auto& b = buckets_.at(bucket_of_.at(i));
  if (--b->pending == 0) launch(b);
}

void GradientBuckets::launch(const std::shared_ptr<Bucket>& b) {
  {
    std::lock_guard<std::mutex> lock(flight_->mu);
    flight_->in_flight++;
    flight_->launched++;
  }
  // The thread runs buckets in launch order, which is the same on every rank: their allreduces pair up.
  // The group outlives its thread's jobs (~Group joins the thread first).
  Group* g = group_.get();
  group_->comm.post([b, flight = flight_, g] {
    std::string err;
    try {
      float* flat = b->flat.data();
      const float scale = 1.0f / static_cast<float>(g->world_size);
      size_t at = 0;
      for (const Slot& s : b->slots) {
        for (size_t k = 0; k < s.count; k++) flat[at + k] = s.grad[k] * scale;
        at += s.count;
      }
      g->pg->allreduce(flat, b->count, DType::f32, ReduceOp::sum);
      at = 0;
      for (const Slot& s : b->slots) {
        std::memcpy(s.grad, flat + at, s.count * 4);
        at += s.count;
      }
    } catch (const std::exception& e) {
      err = e.what();
    } catch (...) {
      err = "an unknown error";
    }
    std::lock_guard<std::mutex> lock(flight->mu);
    if (!err.empty() && flight->error.empty()) flight->error = err;
    flight->in_flight--;
    flight->cv.notify_all();
  });
}

// At process exit (cancel_all_work) the engine thread must not wait out a collective's timeout: the wait
// ends, and the communication thread is left to the process's end.
bool GradientBuckets::drain() {
  std::unique_lock<std::mutex> lock(flight_->mu);
  while (!flight_->cv.wait_for(lock, std::chrono::milliseconds(100), [&] { return flight_->in_flight == 0; }))
    if (work_cancelled()) return false;
  return true;
}

void GradientBuckets::wait() {
  if (!drain()) fail("cancelled: the process is exiting");
  if (!aborted_.empty())
    fail("step: an earlier step failed on this rank part way (", aborted_, "), and the process group was aborted so that no exchange "
         "pairs with another step's; create the process group and the session again");
  std::string err;
  int launched;
  {
    std::lock_guard<std::mutex> lock(flight_->mu);
    err.swap(flight_->error);
    launched = flight_->launched;
    flight_->launched = 0;
  }
  for (auto& b : buckets_) b->pending = static_cast<int>(b->slots.size());
  if (!err.empty()) fail("step: averaging the gradients across ranks failed: ", err);
  if (launched != static_cast<int>(buckets_.size()))
    fail("step: only ", launched, " of ", buckets_.size(), " gradient buckets were complete after backward");  // a bug, not bad input
}

void GradientBuckets::run_now(const std::string& what, std::function<void(ProcessGroup&)> f) {
  struct Job {
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
    std::string err;
  };
  auto job = std::make_shared<Job>();
  Group* g = group_.get();
  group_->comm.post([job, g, f = std::move(f)] {
    std::string err;
    try {
      f(*g->pg);
    } catch (const std::exception& e) {
      err = e.what();
    } catch (...) {
      err = "an unknown error";
    }
    std::lock_guard<std::mutex> lock(job->m);
    job->err = err;
    job->done = true;
    job->cv.notify_all();
  });
  std::unique_lock<std::mutex> lock(job->m);
  while (!job->cv.wait_for(lock, std::chrono::milliseconds(100), [&] { return job->done; }))
    if (work_cancelled()) fail("cancelled: the process is exiting");
  if (!job->err.empty()) fail(what, ": ", job->err);
}

void GradientBuckets::agree(const std::string& error) {
  if (!aborted_.empty())
    fail("step: an earlier step failed on this rank part way (", aborted_, "), and the process group was aborted; create the "
         "process group and the session again");
  if (group_->world_size == 1) {
    if (!error.empty()) throw Error(error);
    return;
  }
  // One number in the common case; the messages only when some rank failed.
  auto flag = std::make_shared<double>(error.empty() ? 0.0 : 1.0);
  run_now("step: agreeing with the other ranks on whether this step can go on failed",
          [flag](ProcessGroup& pg) { pg.allreduce(flag.get(), 1, DType::f64, ReduceOp::max); });
  if (*flag == 0.0) return;
  auto mine = std::make_shared<std::string>(error);
  auto all = std::make_shared<std::vector<std::vector<char>>>();
  run_now("step: gathering the other ranks' errors failed", [mine, all](ProcessGroup& pg) { *all = pg.allgather(mine->data(), mine->size()); });
  std::string ranks, why;
  int failed = 0;
  for (size_t r = 0; r < all->size(); r++) {
    if ((*all)[r].empty()) continue;
    failed++;
    ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
    why += (why.empty() ? "" : "; ") + ("rank " + std::to_string(r) + ": ") + std::string((*all)[r].begin(), (*all)[r].end());
  }
  fail("step failed on ", failed == 1 ? "rank " : "ranks ", ranks, " of ", group_->world_size, ", so every rank skipped it (", why, ")");
}

void GradientBuckets::abandon(const std::string& why) {
  try {
    if (!drain()) return;
    {
      std::lock_guard<std::mutex> lock(flight_->mu);
      flight_->error.clear();
      flight_->launched = 0;
    }
    for (auto& b : buckets_) b->pending = static_cast<int>(b->slots.size());
    if (group_->world_size == 1 || !aborted_.empty()) return;
    aborted_ = why;
    auto text = std::make_shared<std::string>(why);
    run_now("abort", [text](ProcessGroup& pg) { pg.abort(*text); });
  } catch (...) {
    // abandon() throws nothing: the step's own error is the one to report
  }
}

void GradientBuckets::sum_now(double* data, size_t n) {
  // Queued behind the buckets already sent, as on every other rank, so the exchanges pair up. The job
  // owns a copy, so that a wait cut short at process exit leaves it nothing dangling.
  auto values = std::make_shared<std::vector<double>>(data, data + n);
  run_now("synchronized batch norm: summing the statistics across ranks failed",
          [values](ProcessGroup& pg) { pg.allreduce(values->data(), values->size(), DType::f64, ReduceOp::sum); });
  std::copy(values->begin(), values->end(), data);
}

}  // namespace crunet::dist
