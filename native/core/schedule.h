// The schedule: the pure half of compiling a graph (after tinygrad's schedule, which its memory planner
// reads). From the typed graph and what each node's kernel keeps for backward it decides every call's
// order, every buffer's lifetime and size, and where each gradient goes, as buffer and parameter
// numbers; no backend and no memory are involved. The executor binds it (Executor::bind, executor.cc):
// it places the buffers with plan_memory and turns the numbers into pointers.
//
// The time axis, shared with the memory planner (memory_plan.h) and the order the executor runs in:
//   0: upload the feeds   1..n: forward of node i at F(i) = 1 + i   n+1: the seed
//   n+2..2n+1: backward of node i at B(i) = 2n + 1 - i                2n+2: outputs read back, SGD
#pragma once
#include <cstddef>
#include <vector>

#include "graph.h"
#include "memory_plan.h"

namespace crunet {

// What one node's kernel keeps alive for its backward (Kernel::saved_bytes, backward_reads_input,
// backward_reads_output), collected once after the kernels are built.
struct KernelNeeds {
  size_t saved_bytes = 0;
  std::vector<char> reads_input;  // per input slot
  bool reads_output = false;
};

// Where a kernel writes one gradient: a buffer of the schedule, or a parameter's own gradient (which
// lives outside the arena, with the parameter). Neither: no gradient is wanted from that slot.
struct GradDest {
  int buffer = -1;
  int param = -1;
};

// After a call: into += buffer `from` (count floats). The second and later contributions to one
// gradient are written to a temporary and added in, because kernels overwrite (backend.h).
struct Accumulate {
  GradDest into;
  int from;
  size_t count;
};

struct BackwardCall {
  int node;
  int out_grad = -1;               // buffer holding dL/d(output); -1 for a loss kernel that seeds itself
  std::vector<GradDest> in_grad;   // per input slot
  std::vector<GradDest> param_grad;  // per parameter slot
  std::vector<Accumulate> then;    // right after the call
};

// One backward schedule towards a target value: the loss (step) or outputs[0] (gradients).
struct BackwardPass {
  int target = -1;                   // value id
  bool seed_in_loss_kernel = false;  // the loss kernel seeds itself with 1
  std::vector<BackwardCall> calls;   // in backward order
  std::vector<int> zero_first;       // values whose wanted gradient no call writes: zeroed first
  std::vector<char> param_reached;   // per parameter: this pass computes its gradient
};

struct Schedule {
  std::vector<BufferRequest> buffers;  // everything the arena holds, with lifetimes on the time axis
  std::vector<int> value_data;         // per value: its data buffer
  std::vector<int> value_grad;         // per value: its gradient buffer, or -1
  std::vector<int> saved;              // per node: the buffer its forward saves for backward, or -1
  std::vector<BackwardPass> passes;
  int loss_pass = -1, output_pass = -1;  // indices into passes, or -1 (no loss, no outputs)
};

// `input_grads`: also compute gradients of the f32 graph inputs (for gradients()).
Schedule make_schedule(const TypedGraph& g, const std::vector<KernelNeeds>& kernels, bool input_grads);

}  // namespace crunet
