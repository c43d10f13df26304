// The one hook between backward and the update (docs/ARCHITECTURE.md, "A training step" and "Several
// processes"): the executor says when each parameter's gradient is final, and waits before the update.
// A data-parallel session averages the gradients across processes through it (native/dist/
// gradient_buckets.h); a plain session has none. The executor knows nothing else of processes.
#pragma once
#include <cstddef>
#include <vector>

namespace crunet {

class GradientSync {
 public:
  struct Slot {
    float* grad;   // backend memory (host memory on the CPU)
    size_t count;  // floats
  };
  virtual ~GradientSync() = default;
  // Once, when attached: the trainable parameters the loss reaches, in the order backward finishes
  // their gradients (the same order in every process that compiled the same graph).
  virtual void bind(const std::vector<Slot>& slots) = 0;
  // Backward has written slot `i`'s gradient for this step: nothing later adds to it.
  virtual void ready(int i) = 0;
  // Before the update: returns once every gradient is synchronized; throws if that failed.
  virtual void wait() = 0;
  // Backward failed part way: waits for what is in flight, throws nothing, and forgets this step.
  virtual void abandon() = 0;
  // Sums `n` doubles over the processes, in place, now (after what is in flight): synchronized batch
  // norm's statistics, in forward and backward. Throws if that failed.
  virtual void sum_now(double* data, size_t n) = 0;
};

}  // namespace crunet
