// DDP's gradient averaging (docs/ARCHITECTURE.md, "Several processes"): the gradients, in the order
// backward finishes them, are grouped into buckets of about `bucket_bytes`; a bucket is handed to the
// group's communication thread as soon as its last gradient is final, so its allreduce overlaps the rest
// of backward. There it is packed into one buffer, summed across ranks, divided by the world size and
// unpacked. A shared parameter (a CRU factor set) has one gradient, already summed over its uses, and is
// reduced once. Host memory only: the CPU backend's gradients.
#pragma once
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "../core/gradient_sync.h"
#include "process_group.h"

namespace crunet::dist {

class GradientBuckets : public GradientSync {
 public:
  GradientBuckets(std::shared_ptr<Group> group, size_t bucket_bytes);
  ~GradientBuckets() override;
  void bind(const std::vector<Slot>& slots) override;
  void ready(int i) override;
  void wait() override;
  void abandon() override;
  void sum_now(double* data, size_t n) override;

  size_t buckets() const { return buckets_.size(); }

 private:
  struct Bucket {
    int first = 0, last = 0;  // slots [first, last)
    size_t count = 0;         // floats
    std::vector<float> flat;
    int pending = 0;          // slots not yet ready this step
  };
  void launch(Bucket& b);
  bool drain();  // waits until nothing is in flight; false when the process is exiting

  std::shared_ptr<Group> group_;
  size_t bucket_bytes_;
  std::vector<Slot> slots_;
  std::vector<int> bucket_of_;
  std::vector<Bucket> buckets_;
  std::mutex mu_;
  std::condition_variable cv_;
  int in_flight_ = 0, launched_ = 0;
  std::string error_;
  bool out_of_step_ = false;  // a step was abandoned with some buckets sent
};

}  // namespace crunet::dist
