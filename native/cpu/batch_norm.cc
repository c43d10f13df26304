// Batch normalization (PyTorch's nn.BatchNorm2d / BatchNorm1d) on oneDNN.
// Rank-2 [N,C] input is viewed as [N,C,1,1] NHWC: the same bytes as row-major [N,C], so one code path.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "dnnl_util.h"
#include "kernels.h"

namespace crunet::cpu {
namespace {

using bn_fwd = dnnl::batch_normalization_forward;
using bn_bwd = dnnl::batch_normalization_backward;
using flags = dnnl::normalization_flags;

class BatchNorm final : public Kernel {
 public:
  explicit BatchNorm(const NodeSpec& spec) : name_(node_label(spec)), attrs_(spec.bn) {
    const Shape& x = spec.in.at(0);
    if (x.size() != 4 && x.size() != 2) fail(name_, ": expects rank 2 or 4, got ", shape_str(x));
    c_ = x[1];
    rows_ = x[0] * (x.size() == 4 ? x[2] * x[3] : 1);
    data_md_ = act_md(x.size() == 4 ? x : Shape{x[0], x[1], 1, 1});
    stat_md_ = vec_md(c_);
    sink_.resize(2 * c_);

    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    // With a fused ReLU, oneDNN keeps the ReLU's mask in a workspace for backward.
    const auto affine = flags::use_scale | flags::use_shift | (attrs_.fuse_relu ? flags::fuse_norm_relu : flags::none);
    const float eps = attrs_.eps;

    train_pd_ = bn_fwd::primitive_desc(
        bn_fwd::desc(dnnl::prop_kind::forward_training, data_md_, eps, affine), attr, engine());
    // Training normalizes with statistics computed by batch_stats (see there), given to oneDNN as
    // global statistics; train_pd_ stays the hint for backward, which uses the same saved mean and variance.
    train_global_pd_ = bn_fwd::primitive_desc(
        bn_fwd::desc(dnnl::prop_kind::forward_training, data_md_, eps, affine | flags::use_global_stats), attr,
        engine());
    if (attrs_.fuse_relu && train_global_pd_.workspace_desc() != train_pd_.workspace_desc())
      fail(name_, ": oneDNN's fused ReLU workspace differs with global statistics");
    infer_pd_ = bn_fwd::primitive_desc(
        bn_fwd::desc(dnnl::prop_kind::forward_inference, data_md_, eps, affine | flags::use_global_stats), attr,
        engine());
    bwd_pd_ = bn_bwd::primitive_desc(bn_bwd::desc(dnnl::prop_kind::backward, data_md_, data_md_, eps, affine),
                                     attr, engine(), train_pd_);
    train_ = bn_fwd(train_global_pd_);
    infer_ = bn_fwd(infer_pd_);
    bwd_ = bn_bwd(bwd_pd_);
    scratch_md_ = memory::desc({int64_t(scratch_bytes())}, dt::u8, tag::a);
    ws_md_ = train_pd_.workspace_desc();
  }

  // Batch mean then biased batch variance, C floats each: what backward normalizes with; then the fused
  // ReLU's workspace.
  size_t saved_bytes() const override { return ws_offset() + ws_md_.get_size(); }
  size_t scratch_bytes() const override {
    return std::max({train_pd_.scratchpad_desc().get_size(), train_global_pd_.scratchpad_desc().get_size(),
                     infer_pd_.scratchpad_desc().get_size(), bwd_pd_.scratchpad_desc().get_size()});
  }
  bool backward_reads_input(int) const override { return true; }

  void forward(const KernelIO& io) override {
    std::unordered_map<int, memory> args = {
        {DNNL_ARG_SRC, wrap(data_md_, io.in[0])},       {DNNL_ARG_DST, wrap(data_md_, io.out)},
        {DNNL_ARG_SCALE, wrap(stat_md_, io.params[0])}, {DNNL_ARG_SHIFT, wrap(stat_md_, io.params[1])},
        {DNNL_ARG_SCRATCHPAD, wrap(scratch_md_, io.scratch)},
    };
    if (!io.training) {
      args[DNNL_ARG_MEAN] = wrap(stat_md_, io.params[2]);
      args[DNNL_ARG_VARIANCE] = wrap(stat_md_, io.params[3]);
      run(infer_, args, name_);
      return;
    }
    // PyTorch refuses too: the unbiased variance of one value per channel is undefined.
    if (rows_ < 2) fail(name_, ": training needs more than 1 value per channel");
    float* mean = static_cast<float*>(io.saved);
    float* var = mean + c_;
    if (io.cross_process && attrs_.fuse_relu) fail(name_, ": synchronized batch norm cannot run fused with its ReLU");
    const double count = batch_stats(static_cast<const float*>(io.in[0]), mean, var, io.cross_process);
    count_ = count;
    args[DNNL_ARG_MEAN] = wrap(stat_md_, mean);
    args[DNNL_ARG_VARIANCE] = wrap(stat_md_, var);
    if (attrs_.fuse_relu) args[DNNL_ARG_WORKSPACE] = wrap(ws_md_, workspace(io.saved));
    run(train_, args, name_);

    // The batch variance is biased (divides by n); PyTorch's running variance takes the unbiased one.
    const float m = attrs_.momentum;
    const float unbias = float(count / (count - 1));
    float* run_mean = io.params[2];
    float* run_var = io.params[3];
    for (int64_t c = 0; c < c_; c++) {
      run_mean[c] = (1 - m) * run_mean[c] + m * mean[c];
      run_var[c] = (1 - m) * run_var[c] + m * var[c] * unbias;
    }
  }

  void backward(const KernelIO& io) override {
    const float* mean = static_cast<const float*>(io.saved);
    const float* var = mean + c_;
    float* dx = io.in_grad[0];
    if (io.cross_process) {
      synced_backward(io, mean, var, dx);
      return;
    }
    if (!dx && !attrs_.fuse_relu) {
      param_grads_only(io, mean, var);
      return;
    }
    // A fused ReLU's mask is opaque to param_grads_only: let oneDNN write dx somewhere (a rare case:
    // batch norm applied directly to an input that needs no gradient).
    std::vector<float> unwanted_dx(dx ? 0 : rows_ * c_);
    if (!dx) dx = unwanted_dx.data();
    std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, wrap(data_md_, io.in[0])},
         {DNNL_ARG_MEAN, wrap(stat_md_, mean)},
         {DNNL_ARG_VARIANCE, wrap(stat_md_, var)},
         {DNNL_ARG_DIFF_DST, wrap(data_md_, io.out_grad)},
         {DNNL_ARG_SCALE, wrap(stat_md_, io.params[0])},
         {DNNL_ARG_SHIFT, wrap(stat_md_, io.params[1])},
         {DNNL_ARG_DIFF_SRC, wrap(data_md_, dx)},
         {DNNL_ARG_DIFF_SCALE, wrap(stat_md_, grad_or_sink(io, 0))},
         {DNNL_ARG_DIFF_SHIFT, wrap(stat_md_, grad_or_sink(io, 1))},
         {DNNL_ARG_SCRATCHPAD, wrap(scratch_md_, io.scratch)}};
    if (attrs_.fuse_relu) args[DNNL_ARG_WORKSPACE] = wrap(ws_md_, workspace(io.saved));
    // The shift is not read by the maths, but oneDNN 2.6 rejects the call without it.
    run(bwd_, args, name_);
  }

  std::string impl_info() const override {
    return "fwd " + impl_of(train_global_pd_) + ", infer " + impl_of(infer_pd_) + ", bwd " + impl_of(bwd_pd_);
  }

 private:
  // The batch mean and biased variance per channel. oneDNN 2.6's own training statistics sum in float
  // and lose precision when the mean is large against the spread (inputs of mean 100: errors 10x
  // PyTorch's). Here the sums are shifted by the first row (any sample of the channel keeps them small)
  // and accumulated in double: one extra read of the input, exact to float rounding for such inputs.
  // With `cross` (synchronized batch norm) the statistics are those of every process's batch together:
  // each process's count, mean and sum of squared deviations are combined as Chan et al.'s parallel
  // variance does (two sums over the processes: the means, then the deviations around the global mean).
  // Returns the number of values per channel the statistics cover.
  double batch_stats(const float* x, float* mean, float* var, const CrossProcessSum* cross) const {
    const int64_t c = c_, rows = rows_;
    const int team = omp_get_max_threads();
    std::vector<double> acc(static_cast<size_t>(team) * 2 * c, 0.0);  // per thread: sum d, sum d^2
#pragma omp parallel num_threads(team)
    {
      double* s1 = acc.data() + static_cast<size_t>(omp_get_thread_num()) * 2 * c;
      double* s2 = s1 + c;
#pragma omp for schedule(static)
      for (int64_t r = 1; r < rows; r++) {
        const float* xr = x + r * c;
#pragma omp simd
        for (int64_t k = 0; k < c; k++) {
          const double d = double(xr[k]) - double(x[k]);
          s1[k] += d;
          s2[k] += d * d;
        }
      }
    }
    std::vector<double> local_mean(c), m2(c);  // m2: sum of squared deviations from local_mean
    for (int64_t k = 0; k < c; k++) {
      double s1 = 0, s2 = 0;
      for (int t = 0; t < team; t++) s1 += acc[t * 2 * c + k], s2 += acc[t * 2 * c + c + k];
      const double m = s1 / rows;
      local_mean[k] = double(x[k]) + m;
      m2[k] = std::max(s2 - rows * m * m, 0.0);
    }
    double count = double(rows);
    if (cross) {
      std::vector<double> sums(c + 1);
      sums[0] = count;
      for (int64_t k = 0; k < c; k++) sums[k + 1] = count * local_mean[k];
      cross->sum(cross->ctx, sums.data(), sums.size());
      const double total = sums[0];
      std::vector<double> dev(c);
      for (int64_t k = 0; k < c; k++) {
        const double global = sums[k + 1] / total;
        const double d = local_mean[k] - global;
        dev[k] = m2[k] + count * d * d;
        local_mean[k] = global;
      }
      cross->sum(cross->ctx, dev.data(), dev.size());
      m2 = dev;
      count = total;
    }
    for (int64_t k = 0; k < c; k++) {
      mean[k] = float(local_mean[k]);
      var[k] = float(m2[k] / count);
    }
    return count;
  }

  // Backward of synchronized batch norm: dx needs the sums of dy and dy * (x - mean) over every
  // process's batch (PyTorch's SyncBatchNorm), the parameter gradients only this process's, which the
  // gradient averaging then combines like any other.
  void synced_backward(const KernelIO& io, const float* mean, const float* var, float* dx) {
    const float* x = static_cast<const float*>(io.in[0]);
    const float* dy = static_cast<const float*>(io.out_grad);
    const int64_t c = c_, rows = rows_;
    const int team = omp_get_max_threads();
    std::vector<double> acc(static_cast<size_t>(team) * 2 * c, 0.0);  // per thread: sum dy, sum dy (x - mean)
#pragma omp parallel num_threads(team)
    {
      double* s1 = acc.data() + static_cast<size_t>(omp_get_thread_num()) * 2 * c;
      double* s2 = s1 + c;
#pragma omp for schedule(static)
      for (int64_t r = 0; r < rows; r++) {
        const float* xr = x + r * c;
        const float* dyr = dy + r * c;
#pragma omp simd
        for (int64_t k = 0; k < c; k++) {
          s1[k] += dyr[k];
          s2[k] += double(dyr[k]) * (double(xr[k]) - mean[k]);
        }
      }
    }
    std::vector<double> sums(2 * c, 0.0), rstd(c);
    for (int t = 0; t < team; t++)
      for (int64_t k = 0; k < 2 * c; k++) sums[k] += acc[t * 2 * c + k];
    for (int64_t k = 0; k < c; k++) {
      rstd[k] = 1.0 / std::sqrt(double(var[k]) + attrs_.eps);
      grad_or_sink(io, 0)[k] = float(sums[c + k] * rstd[k]);
      grad_or_sink(io, 1)[k] = float(sums[k]);
    }
    if (!dx) return;
    io.cross_process->sum(io.cross_process->ctx, sums.data(), sums.size());
    const float* gamma = io.params[0];
    std::vector<float> a(c), b(c), m(c), d(c);  // dx = a * (dy - b - (x - mean) * d)
    for (int64_t k = 0; k < c; k++) {
      a[k] = float(gamma[k] * rstd[k]);
      b[k] = float(sums[k] / count_);
      d[k] = float(sums[c + k] / count_ * rstd[k] * rstd[k]);
      m[k] = mean[k];
    }
#pragma omp parallel for schedule(static) num_threads(team)
    for (int64_t r = 0; r < rows; r++) {
      const float* xr = x + r * c;
      const float* dyr = dy + r * c;
      float* dxr = dx + r * c;
#pragma omp simd
      for (int64_t k = 0; k < c; k++) dxr[k] = a[k] * (dyr[k] - b[k] - (xr[k] - m[k]) * d[k]);
    }
  }

  // dbeta = sum(dy), dgamma = sum(dy * xhat). oneDNN's backward always writes dx, and a dx-sized scratch
  // would enlarge every session's workspace for the rare batch norm applied directly to a graph input.
  void param_grads_only(const KernelIO& io, const float* mean, const float* var) {
    const float* x = static_cast<const float*>(io.in[0]);
    const float* dy = static_cast<const float*>(io.out_grad);
    std::vector<double> sum_dy(c_, 0.0), sum_dy_x(c_, 0.0);
    for (int64_t r = 0; r < rows_; r++) {
      const float* xr = x + r * c_;
      const float* dyr = dy + r * c_;
      for (int64_t c = 0; c < c_; c++) {
        sum_dy[c] += dyr[c];
        sum_dy_x[c] += double(dyr[c]) * xr[c];
      }
    }
    // sum(dy * (x - mean)) * rstd, expanded so that x is read once.
    for (int64_t c = 0; c < c_; c++) {
      const double rstd = 1.0 / std::sqrt(double(var[c]) + attrs_.eps);
      grad_or_sink(io, 0)[c] = float((sum_dy_x[c] - mean[c] * sum_dy[c]) * rstd);
      grad_or_sink(io, 1)[c] = float(sum_dy[c]);
    }
  }

  size_t ws_offset() const { return (2 * c_ * sizeof(float) + 63) / 64 * 64; }
  void* workspace(void* saved) const { return static_cast<char*>(saved) + ws_offset(); }

  // A frozen gamma or beta has no gradient buffer, but oneDNN writes both.
  float* grad_or_sink(const KernelIO& io, size_t slot) {
    float* g = slot < io.param_grad.size() ? io.param_grad[slot] : nullptr;
    return g ? g : sink_.data() + slot * c_;
  }

  std::string name_;
  BatchNormAttrs attrs_;
  int64_t c_ = 0, rows_ = 0;  // rows_: values per channel (N*H*W)
  double count_ = 0;          // values per channel of the last training forward's statistics (all processes' when synchronized)
  memory::desc data_md_, stat_md_, scratch_md_, ws_md_;
  bn_fwd::primitive_desc train_pd_, train_global_pd_, infer_pd_;
  bn_bwd::primitive_desc bwd_pd_;
  bn_fwd train_, infer_;
  bn_bwd bwd_;
  std::vector<float> sink_;
};

}  // namespace

std::unique_ptr<Kernel> make_batch_norm(const NodeSpec& spec) {
  try {
    return std::make_unique<BatchNorm>(spec);
  } catch (const dnnl::error& e) {
    fail(node_label(spec), ": oneDNN has no kernel for ", shape_str(spec.in.at(0)), ": ", e.what());
  }
}

}  // namespace crunet::cpu
