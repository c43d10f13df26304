// DDP's gradient averaging (docs/ARCHITECTURE.md, "Several processes"): the gradients, in the order
// backward finishes them, are grouped into buckets of about `bucket_bytes`; a bucket is handed to the
// group's communication thread as soon as its last gradient is final, so its allreduce overlaps the rest
// of backward. There it is packed into one buffer divided by the world size (as PyTorch does: the sum
// then stays within float range even with a large loss scale), summed across ranks and unpacked. A
// shared parameter (a CRU factor set) has one gradient, already summed over its uses, and is reduced
// once. Host memory only: the CPU backend's gradients.
#pragma once
#include <condition_variable>
#include <functional>
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
  void agree(const std::string& error) override;
  void abandon(const std::string& why) override;
  void sum_now(double* data, size_t n) override;

  size_t buckets() const { return buckets_.size(); }

 private:
  struct Bucket {
    std::vector<Slot> slots;
    size_t count = 0;  // floats
    std::vector<float> flat;
    int pending = 0;  // slots not yet ready this step
  };
  // What the engine thread and the communication thread's jobs share. A job owns its bucket and this,
  // so that a wait cut short at process exit (the session freed meanwhile) leaves it nothing dangling.
  struct Flight {
    std::mutex mu;
    std::condition_variable cv;
    int in_flight = 0, launched = 0;
    std::string error;
  };
  void launch(const std::shared_ptr<Bucket>& b);
  bool drain();  // waits until nothing is in flight; false when the process is exiting
  // Runs `f` on the communication thread after what is in flight, and waits for it; `f` owns what it
  // touches. Throws `what: error` when it threw.
  void run_now(const std::string& what, std::function<void(ProcessGroup&)> f);

  std::shared_ptr<Group> group_;
  size_t bucket_bytes_;
  std::vector<int> bucket_of_;
  std::vector<std::shared_ptr<Bucket>> buckets_;
  std::shared_ptr<Flight> flight_ = std::make_shared<Flight>();
  std::string aborted_;  // why this rank aborted the group (a step failed here part way)
};

}  // namespace crunet::dist
