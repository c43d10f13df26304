// The backend contract: a backend builds one Kernel per node (all primitives created once, at compile
// time) and provides memory and a few whole-tensor helpers. The executor owns policy (order,
// memory plan, gradient accumulation); a kernel only computes.
//
// Gradient rule (as llm.c states it): a kernel always OVERWRITES the gradients it is given
// (in_grad, param_grad). Where a value or a parameter has several uses, the executor hands the second
// and later uses a temporary buffer and adds it in with Backend::accumulate, so a shared parameter's
// gradient is the sum over its uses.
//
// Layout: each backend picks how rank-4 activations [N,C,H,W] are stored in its memory, and converts
// at the edges in upload_activation / download_activation: the CPU backend stores them channels-last
// (NHWC: oneDNN's grouped and depthwise convolutions and its batch norm are several times slower on plain
// NCHW), the CUDA backend plain NCHW for fp32. Rank-2 [N,F] is row-major everywhere;
// parameters keep PyTorch's layout (conv weight [O, C/groups, kh, kw]) on every backend.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "error.h"
#include "ops.h"
#include "precision.h"

namespace crunet {

// Per-step results a loss kernel reports.
struct StepStats {
  float loss = 0;
  int correct = 0;       // top-1
  int topk_correct = 0;  // only when CrossEntropyAttrs::topk > 0
  float grad_norm = -1;  // the executor's: global L2 norm of the gradient before clipping (-1: no update)
};

// Everything one kernel call touches. Pointers are backend memory; unused ones are nullptr.
// Sums doubles over the processes of a data-parallel session, in place, blocking: synchronized batch
// norm's statistics (compile's syncBatchNorm; docs/ARCHITECTURE.md, "Several processes"). The executor
// owns it and makes it a no-op outside step(). A plain callback: nothing of the process group crosses.
struct CrossProcessSum {
  void (*sum)(void* ctx, double* data, size_t n) = nullptr;
  void* ctx = nullptr;
};

struct KernelIO {
  std::vector<const void*> in;   // node inputs (f32, or i32 labels for the loss)
  void* out = nullptr;           // node output
  std::vector<float*> params;    // parameter slots (batch norm's running statistics are updated in place)
  void* saved = nullptr;         // saved_bytes(), written by forward, read by backward
  void* scratch = nullptr;       // scratch_bytes(), free for use during one call
  bool training = true;          // forward: training (batch statistics, save for backward) or inference
  // backward only
  const void* out_grad = nullptr;     // dL/d(out); for the loss a scalar seed (nullptr means 1)
  std::vector<float*> in_grad;        // nullptr where no gradient is wanted
  std::vector<float*> param_grad;     // nullptr for non-trainable slots
  StepStats* stats = nullptr;         // loss kernels write here in forward
  const CrossProcessSum* cross_process = nullptr;  // batch norm with synchronized statistics, else nullptr
};

class Kernel {
 public:
  virtual ~Kernel() = default;
  virtual size_t saved_bytes() const { return 0; }
  virtual size_t scratch_bytes() const { return 0; }
  // What backward reads besides out_grad and params, so the planner keeps exactly that alive.
  virtual bool backward_reads_input(int /*i*/) const { return true; }
  virtual bool backward_reads_output() const { return false; }
  virtual void forward(const KernelIO& io) = 0;
  virtual void backward(const KernelIO& io) = 0;
  // Names the implementation that runs (e.g. oneDNN's "brg:avx512_core"), for benchmarks.
  virtual std::string impl_info() const { return ""; }
  // A JSON array describing choices made at compile time (cuDNN: each direction's algorithm search), or
  // "" when there is nothing to report. Session.profile() hands it to JS as `algorithms`.
  virtual std::string report_json() const { return ""; }
};

// The optimizer: an update rule and the state buffers it keeps per trainable parameter
// (docs/ARCHITECTURE.md, "A training step"). Each rule has PyTorch's formula and defaults:
//   sgd    torch.optim.SGD (dampening 0); state: momentum_buffer
//   adamw  torch.optim.AdamW (amsgrad off); state: exp_avg, exp_avg_sq
//   lamb   timm's Lamb (bias correction, grad averaging; trust ratio ||w|| / ||update|| on parameters with
//          weight decay, not clipped); state: exp_avg, exp_avg_sq. timm's own global clipping at norm 1 is
//          clip_grad_norm here.
enum class UpdateRule : int32_t { sgd = 0, adamw = 1, lamb = 2 };
constexpr int kMaxStateBuffers = 2;
inline int state_buffers(UpdateRule r) { return r == UpdateRule::sgd ? 1 : 2; }

struct OptimizerConfig {
  UpdateRule rule = UpdateRule::sgd;
  float lr = 0.1f;
  float weight_decay = 0.0f;  // for parameters that take decay, unless a group sets their own (UpdateSlot)
  float momentum = 0.9f;      // sgd
  bool nesterov = false;      // sgd
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;  // adamw
  float clip_grad_norm = 0;   // > 0: scale the gradient down to this global L2 norm before the update
};

// Adam's bias correction 1 - beta^t, in double as PyTorch computes it on the host (AdamW and LAMB, CPU and CUDA).
inline double bias_correction(float beta, int64_t t) { return 1.0 - std::pow(static_cast<double>(beta), static_cast<double>(t)); }

// One trainable parameter as the optimizer sees it, with its group's settings.
struct UpdateSlot {
  float* w;
  const float* grad;
  float* state[kMaxStateBuffers];  // state_buffers(rule) of them, each the size of w
  size_t n;
  float weight_decay;  // this parameter's (0: none)
  float lr_scale;      // this parameter's learning rate is lr * lr_scale
};

// What changes from update to update.
struct UpdateStep {
  float lr;
  float grad_scale;  // the gradient used is grad * grad_scale (averaging accumulated micro-batches, clipping)
  int64_t t;         // 1-based count of this update (AdamW's bias correction)
};

// One exponential moving average of a parameter: ema = decay * ema + (1 - decay) * w.
struct EmaSlot {
  float* ema;
  const float* w;
  size_t n;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual std::unique_ptr<Kernel> make_kernel(const NodeSpec& spec) = 0;

  virtual void* alloc(size_t bytes) = 0;  // arena_alignment()-aligned, zero-filled; throws crunet::Error on failure
  // The alignment of every buffer the memory plan places in the activation arena (memory_plan.h).
  virtual size_t arena_alignment() const { return 64; }
  // The most elements one tensor may have on this backend; compile refuses a graph with a larger one,
  // naming the node, instead of failing (or overflowing) inside a library call.
  virtual int64_t max_tensor_elements() const { return INT64_MAX; }
  virtual void release(void* p) = 0;
  virtual void upload(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void download(void* host_dst, const void* src, size_t bytes) = 0;

  // Host NCHW <-> backend layout for a value of logical shape s (rank 4: NHWC; otherwise plain).
  virtual void upload_activation(void* dst, const float* host_nchw, const Shape& s) = 0;
  virtual void download_activation(float* host_nchw, const void* src, const Shape& s) = 0;

  // Backend-to-backend copy of `bytes` (e.g. to snapshot state without a host round trip). The default
  // goes through host memory; a device backend overrides it with a device-side copy.
  virtual void copy(void* dst, const void* src, size_t bytes) {
    std::vector<char> host(bytes);
    download(host.data(), src, bytes);
    upload(dst, host.data(), bytes);
  }

  // Sets `bytes` of backend memory to zero, in stream order (gradients that backward accumulates into).
  // The default uploads zeros from the host; a device backend overrides it with a memset.
  virtual void zero(void* dst, size_t bytes) {
    std::vector<char> zeros(bytes, 0);
    upload(dst, zeros.data(), bytes);
  }

  // Waits until all work queued so far has finished (profiling: host clocks then time the work, not its
  // queueing). The CPU runs synchronously: nothing to wait for.
  virtual void synchronize() {}

  virtual void accumulate(float* dst, const float* src, size_t n) = 0;  // dst += src
  // The sum of squares of every slot's gradient, in double (the global norm clipping and StepResult use).
  virtual double grad_sum_squares(const std::vector<UpdateSlot>& slots) = 0;
  // Applies cfg.rule to every slot (the formulas at OptimizerConfig; g = grad * step.grad_scale, lr =
  // step.lr * slot.lr_scale). Returns the index (into slots) of the first parameter that holds a NaN or an
  // infinity after the update, or -1: a flag reduced while updating, so the check costs no extra pass.
  virtual int optimizer_step(const OptimizerConfig& cfg, const UpdateStep& step, const std::vector<UpdateSlot>& slots) = 0;
  // ema = decay * ema + (1 - decay) * w for every slot (timm's ModelEmaV2).
  virtual void ema_step(float decay, const std::vector<EmaSlot>& slots) = 0;

  // The loss scaler's unscale (loss_scaler.h): x *= factor over n floats in place; returns false when an
  // element was NaN or infinite before scaling (as PyTorch's _amp_foreach_non_finite_check_and_unscale_)
  // or became so by scaling (a large finite gradient times a large 1/scale overflows): either way the
  // step must be skipped, since its update would leave non-finite weights.
  // "" when this backend has the unscale kernel; otherwise why not, and compile refuses lossScale on it
  // (docs/GPU.md says what the CUDA backend needs). There is no host round-trip fallback: on a device it
  // would copy every gradient twice per step.
  virtual std::string loss_scaling_unsupported() const { return "this backend has no unscale kernel yet"; }
  virtual bool unscale(float* /*x*/, size_t /*n*/, float /*factor*/) { fail("unscale: ", loss_scaling_unsupported()); }

  // "" when this device can compute in precision p; otherwise why not, naming what it lacks. Compile
  // refuses a precision with that reason, the device and the precisions it can do (docs/ARCHITECTURE.md,
  // "Precision"); a backend overrides this as its low-precision kernels arrive.
  virtual std::string precision_unsupported(Precision p) const {
    return p == Precision::fp32 ? "" : std::string("this backend has no ") + precision_name(p) + " kernels yet";
  }

  // Whether batchNorm kernels accept BatchNormAttrs::fuse_relu (then the executor fuses batchNorm -> relu).
  virtual bool fuses_batch_norm_relu() const { return false; }

  virtual void set_num_threads(int n) = 0;
  virtual int num_threads() const = 0;
};

// The CPU backend (native/cpu); created by the engine.
std::unique_ptr<Backend> make_cpu_backend();

}  // namespace crunet
