// See gradient_buckets.h.
#include "gradient_buckets.h"

#include <algorithm>
#include <cstring>

#include "../core/error.h"
#include "../core/executor.h"

namespace crunet::dist {

GradientBuckets::GradientBuckets(std::shared_ptr<Group> group, size_t bucket_bytes) : group_(std::move(group)), bucket_bytes_(std::max<size_t>(bucket_bytes, 4)) {}

GradientBuckets::~GradientBuckets() { drain(); }  // cancelled: the process is exiting, nothing is freed after

void GradientBuckets::bind(const std::vector<Slot>& slots) {
  slots_ = slots;
  bucket_of_.assign(slots.size(), -1);
  buckets_.clear();
  for (size_t i = 0; i < slots.size(); i++) {
    // A new bucket once the current one holds bucket_bytes (a parameter larger than that is a bucket alone).
    if (buckets_.empty() || buckets_.back().count * 4 >= bucket_bytes_) buckets_.push_back({static_cast<int>(i), static_cast<int>(i), 0, {}, 0});
    Bucket& b = buckets_.back();
    b.last = static_cast<int>(i) + 1;
    b.count += slots[i].count;
    bucket_of_[i] = static_cast<int>(buckets_.size()) - 1;
  }
  for (Bucket& b : buckets_) {
    b.flat.resize(b.count);
    b.pending = b.last - b.first;
  }
}

void GradientBuckets::ready(int i) {
  if (out_of_step_) return;
  Bucket& b = buckets_.at(bucket_of_.at(i));
  if (--b.pending == 0) launch(b);
}

void GradientBuckets::launch(Bucket& b) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    in_flight_++;
    launched_++;
  }
  // The thread runs buckets in launch order, which is the same on every rank: their allreduces pair up.
  group_->comm.post([this, &b] {
    std::string err;
    try {
      float* flat = b.flat.data();
      size_t at = 0;
      for (int s = b.first; s < b.last; s++) {
        std::memcpy(flat + at, slots_[s].grad, slots_[s].count * 4);
        at += slots_[s].count;
      }
      group_->pg->allreduce(flat, b.count, DType::f32, ReduceOp::sum);
      const float scale = 1.0f / static_cast<float>(group_->world_size);
      at = 0;
      for (int s = b.first; s < b.last; s++) {
        float* g = slots_[s].grad;
        for (size_t k = 0; k < slots_[s].count; k++) g[k] = flat[at + k] * scale;
        at += slots_[s].count;
      }
    } catch (const std::exception& e) {
      err = e.what();
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (!err.empty() && error_.empty()) error_ = err;
    in_flight_--;
    cv_.notify_all();
  });
}

// At process exit (cancel_all_work) the engine thread must not wait out a collective's timeout: the wait
// ends, and the communication thread is left to the process's end.
bool GradientBuckets::drain() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!cv_.wait_for(lock, std::chrono::milliseconds(100), [&] { return in_flight_ == 0; }))
    if (work_cancelled()) return false;
  return true;
}

void GradientBuckets::wait() {
  if (!drain()) fail("cancelled: the process is exiting");
  if (out_of_step_)
    fail("step: an earlier step failed part way through backward, after some of its gradient buckets had been sent: this rank's "
         "exchanges no longer pair with the other ranks'; create the process group and the session again");
  std::string err;
  int launched;
  {
    std::lock_guard<std::mutex> lock(mu_);
    err.swap(error_);
    launched = launched_;
    launched_ = 0;
  }
  for (Bucket& b : buckets_) b.pending = b.last - b.first;
  if (!err.empty()) fail("step: averaging the gradients across ranks failed: ", err);
  if (launched != static_cast<int>(buckets_.size()))
    fail("step: only ", launched, " of ", buckets_.size(), " gradient buckets were complete after backward");  // a bug, not bad input
}

void GradientBuckets::abandon() {
  if (!drain()) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (launched_ > 0 && launched_ < static_cast<int>(buckets_.size())) out_of_step_ = true;
  error_.clear();
  launched_ = 0;
  for (Bucket& b : buckets_) b.pending = b.last - b.first;
}

}  // namespace crunet::dist

namespace crunet::dist {

void GradientBuckets::sum_now(double* data, size_t n) {
  // Queued behind the buckets already sent, as on every other rank, so the exchanges pair up. The job
  // owns a copy, so that a wait cut short at process exit leaves it nothing dangling.
  struct Job {
    std::vector<double> values;
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
    std::string err;
  };
  auto job = std::make_shared<Job>();
  job->values.assign(data, data + n);
  Group* g = group_.get();
  group_->comm.post([job, g] {
    try {
      g->pg->allreduce(job->values.data(), job->values.size(), DType::f64, ReduceOp::sum);
    } catch (const std::exception& e) {
      job->err = e.what();
    }
    std::lock_guard<std::mutex> lock(job->m);
    job->done = true;
    job->cv.notify_all();
  });
  std::unique_lock<std::mutex> lock(job->m);
  while (!job->cv.wait_for(lock, std::chrono::milliseconds(100), [&] { return job->done; }))
    if (work_cancelled()) fail("cancelled: the process is exiting");
  if (!job->err.empty()) fail("synchronized batch norm: summing the statistics across ranks failed: ", job->err);
  std::copy(job->values.begin(), job->values.end(), data);
}

}  // namespace crunet::dist
