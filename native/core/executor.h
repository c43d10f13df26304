// The executor: a compiled graph. At construction it infers shapes, builds one kernel per node, makes
// the schedule (schedule.h: pure, no memory) and binds it: places its buffers in one arena and prebuilds
// every kernel call's arguments and the optimizer's slots. step() is then a loop over a forward list and
// a backward list with no decisions in it (after oneDNN's cnn_training_f32.cpp and llm.c). docs/
// ARCHITECTURE.md ("Execution model", "Memory plan", "A training step") walks through it.
// Not thread-safe: the addon calls it from the engine thread only.
#pragma once
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "backend.h"
#include "gradient_sync.h"
#include "graph.h"
#include "memory_plan.h"
#include "schedule.h"

namespace crunet {

struct ExecutorOptions {
  int64_t batch = 1;
  uint64_t seed = 0;
  SgdConfig sgd;
  bool input_grads = false;  // also compute gradients of f32 graph inputs (for gradients())
  bool reuse_memory = true;  // let the planner share bytes between buffers with disjoint lifetimes
  bool profile = false;      // time every kernel call
  bool fuse = true;          // apply the graph rewrites of fusion.h the backend supports
};

struct MemoryReport {
  size_t arena_bytes, naive_bytes, parameter_bytes, scratch_bytes, planned_peak_bytes;
  int buffers;
};

struct NodeProfile {
  std::string name, op, impl;
  std::string report;  // Kernel::report_json()
  double forward_ms = 0, backward_ms = 0;
  int calls = 0;
};

// Host pointers to a full batch for each graph input, in graph input order (NCHW f32 or i32 labels).
using Feeds = std::vector<const void*>;

// Makes every running and later forward or backward pass stop at its next kernel boundary with an
// Error; called once, when the process exits (addon/engine_thread.cc), so that exiting never waits for
// a whole step nor tears down oneDNN under one.
void cancel_all_work();
// Whether cancel_all_work() was called: waits outside the kernels (a gradient exchange) stop too.
bool work_cancelled();
// Throws crunet::Error naming the first node with an input, output or parameter of more than `limit`
// elements (Backend::max_tensor_elements() of the backend `where`). Compile runs it before any kernel
// is built, so that no library call sees a tensor it cannot address.
void check_tensor_elements(const TypedGraph& g, int64_t limit, const std::string& where);

class Executor {
 public:
  Executor(Backend& backend, const GraphDesc& graph, const ExecutorOptions& opts);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  const TypedGraph& graph() const { return g_; }

  // Forward (training), loss, backward, SGD update. Throws without updating anything when an input is
  // not finite, a label is out of range or the loss is not finite; throws after the update (which stays
  // applied) when a parameter became non-finite, naming it.
  StepStats step(const Feeds& feeds, float lr);
  // Inference forward; writes each graph output (NCHW) to outs.
  void forward(const Feeds& feeds, const std::vector<float*>& outs);
  // Training-mode forward and backward seeded with dL/d(outputs[0]); no update, and batch-norm running
  // statistics are left as they were: no state changes. Writes the outputs,
  // the f32 input gradients (nullptr entries skipped) and the trainable parameters' gradients.
  void gradients(const Feeds& feeds, const float* seed, const std::vector<float*>& outs,
                 const std::vector<float*>& input_grads, const std::vector<float*>& param_grads);

  // Attaches the hook that step() calls as gradients become final and before the update (gradient_sync.h).
  void set_gradient_sync(std::shared_ptr<GradientSync> sync);
  // After set_gradient_sync: batch norm computes its training statistics over every process's batch
  // in step() (gradients() stays per process). Needs a graph without fused batchNorm-relu nodes.
  void synchronize_batch_norm();

  void set_sgd(const SgdConfig& cfg) { opts_.sgd = cfg; }
  const SgdConfig& sgd() const { return opts_.sgd; }
  void read_param(int id, float* host) const;
  void write_param(int id, const float* host);
  // Optimizer state (momentum buffers), for checkpoints; trainable parameters only.
  void read_momentum(int id, float* host) const;
  void write_momentum(int id, const float* host);

  MemoryReport memory() const;
  std::vector<NodeProfile> profile() const { return prof_; }
  void reset_profile();
  // Turns per-kernel timing on or off between calls (benchmarks time whole steps without it, then profile
  // a few). On a device backend each timed kernel is bracketed by synchronizations.
  void set_profile(bool on) { opts_.profile = on; }

 private:
  struct Pass;  // one backward schedule (towards the loss, or towards outputs[0])
  void release();  // frees the kernels and all backend memory; idempotent (destructor, failed constructor)
  void* alloc_or_explain(size_t bytes, const char* what, bool per_batch);
  void build_kernels();
  std::vector<KernelNeeds> kernel_needs() const;
  void bind(const Schedule& s);  // places the schedule's buffers and prebuilds every call's arguments
  void init_params();
  void upload_feeds(const Feeds& feeds);
  void save_running_stats();     // batch-norm running statistics -> running_backup_
  void restore_running_stats();  // and back
  void run_forward(bool training);
  void run_backward(const Pass& pass, bool sync = false);
  template <typename F>
  void timed(int node, bool fwd, F&& f);

  Backend& be_;
  ExecutorOptions opts_;
  TypedGraph g_;
  std::vector<std::unique_ptr<Kernel>> kernels_;
  std::vector<KernelIO> fwd_io_;
  std::unique_ptr<Pass> loss_pass_, output_pass_;

  MemoryPlan plan_;
  void* arena_ = nullptr;
  void* scratch_ = nullptr;
  size_t scratch_bytes_ = 0;
  std::vector<void*> value_data_;  // per value: its data in the arena
  std::vector<float*> value_grad_;  // per value: its gradient in the arena (or nullptr)
  std::vector<float*> param_data_, param_grad_, param_mom_;  // persistent, per parameter
  size_t param_bytes_ = 0;
  std::vector<SgdSlot> sgd_slots_;  // the trainable parameters the loss reaches, as the optimizer takes them
  std::vector<int> sgd_params_;     // the parameter id of each slot
  // Batch-norm running statistics are snapshot here (a backend-side copy, no host round trip) before
  // each training step's forward, so that a step whose loss is not finite can restore them.
  void* running_backup_ = nullptr;
  std::vector<std::pair<int, size_t>> running_slots_;  // (parameter id, byte offset in running_backup_)
  StepStats last_stats_;
  std::shared_ptr<GradientSync> sync_;
  std::vector<std::vector<int>> sync_after_;  // per loss-pass call: the sync slots whose gradients it finishes
  CrossProcessSum cross_process_;              // what synchronized batch norm calls; a no-op unless in_step_
  bool in_step_ = false;
  std::vector<NodeProfile> prof_;
};

}  // namespace crunet
