// The one hook between backward and the update (docs/ARCHITECTURE.md, "A training step" and "Several
// processes"): the executor says when each parameter's gradient is final, and waits before the update.
// A data-parallel session averages the gradients across processes through it (native/dist/
// gradient_buckets.h); a plain session has none. The executor knows nothing else of processes.
#pragma once
#include <cstddef>
#include <string>
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
  // Where every process is at the same point of a step (after the inputs are checked, after the loss
  // is): each says whether its part failed (`error`, empty when not). Throws on every process, naming
  // each failing process and why, when any did; then no process has sent anything of this step.
  virtual void agree(const std::string& error) = 0;
  // The step failed on this process only, elsewhere than at agree(): waits for what is in flight,
  // throws nothing, and aborts the group, so that the other processes fail at once naming this one
  // (`why`) instead of pairing their exchanges with this process's next step.
  virtual void abandon(const std::string& why) = 0;
  // Sums `n` doubles over the processes, in place, now (after what is in flight): synchronized batch
  // norm's statistics, in forward and backward. Throws if that failed.
  virtual void sum_now(double* data, size_t n) = 0;
};

}  // namespace crunet
