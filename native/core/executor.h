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
#include "loss_scaler.h"
#include "memory_plan.h"
#include "schedule.h"

namespace crunet {

struct ExecutorOptions {
  int64_t batch = 1;
  uint64_t seed = 0;
  OptimizerConfig optimizer;
  // Per parameter (graph order; empty: the defaults): the weight decay and learning-rate multiplier of the
  // parameter's group. By default a parameter whose ParamDesc::weight_decay is set takes
  // optimizer.weight_decay, the others none, and every multiplier is 1.
  std::vector<float> param_weight_decay, param_lr_scale;
  // A moving average of every parameter (timm's ModelEmaV2), updated after each optimizer update, with
  // decay min(ema_decay, (1 + u) / (10 + u)) after u updates when ema_warmup is set.
  bool ema = false;
  float ema_decay = 0.9998f;
  bool ema_warmup = false;
  bool input_grads = false;  // also compute gradients of f32 graph inputs (for gradients())
  bool reuse_memory = true;  // let the planner share bytes between buffers with disjoint lifetimes
  bool profile = false;      // time every kernel call
  bool fuse = true;          // apply the graph rewrites of fusion.h the backend supports
  Precision precision = Precision::fp32;  // refused unless the backend can compute in it (docs/ARCHITECTURE.md, "Precision")
  LossScalerConfig loss_scale;            // off unless enabled
};

// What step() reports: the loss kernel's statistics and what the loss scaler did.
struct StepOutcome : StepStats {
  bool skipped = false;   // the scaled gradients held an inf or NaN: nothing was updated
  float loss_scale = 0;   // the scale this step's backward was seeded with (0 without loss scaling)
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

  // Forward (training), loss, backward, then the update phase: the gradient's global norm, clipping, the
  // optimizer's update and the moving average. Throws without updating anything when an input is not
  // finite, a label is out of range, the loss or the gradient's norm is not finite; throws after the
  // update (which stays applied) when a parameter became non-finite, naming it. With `accumulate` the
  // gradients are added to those of earlier accumulating steps and nothing is updated; the next step
  // without it updates with the mean gradient of all of them (gradient accumulation over micro-batches).
  // With loss scaling, a step whose unscaled gradients hold an inf or a NaN is skipped instead: nothing
  // changes but the scale (outcome.skipped); a skipped micro-batch is not counted in the mean, and a
  // skipped update also drops the micro-batches accumulated for it.
  StepOutcome step(const Feeds& feeds, float lr, bool accumulate = false);
  // Inference forward; writes each graph output (NCHW) to outs. `ema`: with the moving average's weights.
  void forward(const Feeds& feeds, const std::vector<float*>& outs, bool ema = false);
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

  // New settings of the same update rule (the state buffers were made for it); per-parameter vectors as
  // in ExecutorOptions.
  void set_optimizer(const OptimizerConfig& cfg, const std::vector<float>& param_weight_decay, const std::vector<float>& param_lr_scale);
  const OptimizerConfig& optimizer() const { return opts_.optimizer; }
  void read_param(int id, float* host) const;
  void write_param(int id, const float* host);
  // Optimizer state buffer k (< state_buffers(rule)) of a trainable parameter, for checkpoints.
  void read_state(int id, int k, float* host) const;
  void write_state(int id, int k, const float* host);
  // Updates applied so far (AdamW's bias correction and the EMA's warmup count them); checkpoints keep it.
  int64_t updates() const { return updates_; }
  void set_updates(int64_t u) { updates_ = u; }
  // Micro-batches accumulated since the last update.
  int accumulated() const { return accumulated_; }
  bool has_ema() const { return opts_.ema; }
  void read_ema(int id, float* host) const;
  void write_ema(int id, const float* host);

  // The loss scaler's state (checkpoints); set_loss_scaler throws for a session without loss scaling.
  bool loss_scaling() const { return scaler_.enabled(); }
  LossScalerState loss_scaler() const { return scaler_.state(); }
  void set_loss_scaler(const LossScalerState& s);

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
  void check_precision() const;
  void init_params();
  void upload_feeds(const Feeds& feeds);
  void save_running_stats();     // batch-norm running statistics -> running_backup_
  void restore_running_stats();  // and back
  void run_forward(bool training, std::vector<KernelIO>& io);
  void run_backward(const Pass& pass, bool sync = false);
  void accumulate_gradients();  // this step's gradients into param_acc_
  double gradient_norm();       // the update phase (executor.cc): may fail, nothing updated yet
  void apply_update(float lr, double norm);
  template <typename F>
  void timed(int node, bool fwd, F&& f);

  Backend& be_;
  ExecutorOptions opts_;
  TypedGraph g_;
  std::vector<std::unique_ptr<Kernel>> kernels_;
  std::vector<KernelIO> fwd_io_;
  std::vector<KernelIO> ema_fwd_io_;  // fwd_io_ reading the moving average's parameters
  std::unique_ptr<Pass> loss_pass_, output_pass_;

  MemoryPlan plan_;
  void* arena_ = nullptr;
  void* scratch_ = nullptr;
  size_t scratch_bytes_ = 0;
  std::vector<void*> value_data_;  // per value: its data in the arena
  std::vector<float*> value_grad_;  // per value: its gradient in the arena (or nullptr)
  std::vector<float*> param_data_, param_grad_;   // persistent, per parameter
  std::vector<float*> param_state_[kMaxStateBuffers];  // the optimizer's state buffers (trainable parameters)
  std::vector<float*> param_acc_;  // accumulated gradients (allocated by the first accumulating step)
  std::vector<float*> param_ema_;  // the moving average (every parameter, when opts_.ema)
  size_t param_bytes_ = 0;
  std::vector<UpdateSlot> update_slots_;  // the trainable parameters the loss reaches, as the optimizer takes them
  std::vector<int> update_params_;        // the parameter id of each slot
  std::vector<EmaSlot> ema_slots_;
  int64_t updates_ = 0;
  int accumulated_ = 0;
  // Batch-norm running statistics are snapshot here (a backend-side copy, no host round trip) before
  // each training step's forward, so that a step whose loss is not finite can restore them.
  void* running_backup_ = nullptr;
  std::vector<std::pair<int, size_t>> running_slots_;  // (parameter id, byte offset in running_backup_)
  LossScaler scaler_;
  float* seed_ = nullptr;  // with loss scaling: the loss gradient's seed, the current scale, in backend memory
  StepStats last_stats_;
  std::shared_ptr<GradientSync> sync_;
  std::vector<std::vector<int>> sync_after_;  // per loss-pass call: the sync slots whose gradients it finishes
  CrossProcessSum cross_process_;              // what synchronized batch norm calls; a no-op unless in_step_
  bool in_step_ = false;
  std::vector<NodeProfile> prof_;
};

}  // namespace crunet
