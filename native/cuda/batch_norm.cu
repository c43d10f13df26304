// Batch normalization (PyTorch's nn.BatchNorm2d / BatchNorm1d) on cuDNN, spatial mode; rank-2 [N,C] is
// viewed as [N,C,1,1] (the same bytes), which spatial mode normalizes exactly as BatchNorm1d does.
//
// Note [running statistics]: cuDNN updates running = (1 - f) running + f batch with f the
// exponentialAverageFactor, which is PyTorch's momentum, and its running variance takes the unbiased
// batch variance (n/(n-1)), as PyTorch's: PyTorch itself hands momentum to cuDNN unchanged. The CPU
// backend applies the same rule by hand; test/gpu compares both after a training forward.
// The saved tensors are the batch mean, the inverse standard deviation (1/sqrt(var + eps)) and the
// biased variance. They are computed here (bn_stats), not by cudnnBatchNormalizationForwardTraining:
// sums shifted by one sample of the channel and accumulated in double stay exact for inputs whose mean
// is large against their spread (mean 100 or 1e3), where float sums lose the variance. The output is
// then cuDNN's inference normalization with those statistics; backward hands them to cuDNN as its saved
// mean and inverse std, as its own training forward would.
#include "allocator.h"
#include "kernels.h"

namespace crunet::cuda {
namespace {

// dgamma[c] = sum(dy * (x - mean)) * invstd, dbeta[c] = sum(dy), over N and HxW of channel c: for a
// batch norm whose input needs no gradient (cuDNN's backward always writes dx). One block per channel.
__global__ void bn_param_grads(const float* x, const float* dy, const float* mean, const float* invstd,
                               float* dgamma, float* dbeta, int64_t n, int64_t c, int64_t hw) {
  const int64_t ch = blockIdx.x;
  float s_dy = 0, s_dyx = 0;
  const float m = mean[ch];
  for (int64_t i = threadIdx.x; i < n * hw; i += blockDim.x) {
    const int64_t idx = (i / hw) * c * hw + ch * hw + i % hw;
    s_dy += dy[idx];
    s_dyx += dy[idx] * (x[idx] - m);
  }
  __shared__ float a[kThreads], b[kThreads];
  a[threadIdx.x] = s_dy;
  b[threadIdx.x] = s_dyx;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) {
      a[threadIdx.x] += a[threadIdx.x + s];
      b[threadIdx.x] += b[threadIdx.x + s];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    if (dbeta) dbeta[ch] = a[0];
    if (dgamma) dgamma[ch] = b[0] * invstd[ch];
  }
}

// Per channel (one block each): mean, 1/sqrt(var + eps) and the biased var of x over N and HxW, and the
// running statistics' update running = (1 - f) running + f batch (unbiased variance, Note above).
__global__ void bn_stats(const float* x, float* mean, float* invstd, float* var, float* run_mean, float* run_var,
                         int64_t n, int64_t c, int64_t hw, float eps, float momentum) {
  const int64_t ch = blockIdx.x, count = n * hw;
  const double shift = x[ch * hw];  // any sample of the channel keeps the shifted sums small
  double s1 = 0, s2 = 0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
    const double d = double(x[(i / hw) * c * hw + ch * hw + i % hw]) - shift;
    s1 += d;
    s2 += d * d;
  }
  __shared__ double a[kThreads], b[kThreads];
  a[threadIdx.x] = s1;
  b[threadIdx.x] = s2;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) {
      a[threadIdx.x] += a[threadIdx.x + s];
      b[threadIdx.x] += b[threadIdx.x + s];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    const double m = a[0] / count;
    const double v = fmax(b[0] / count - m * m, 0.0);  // biased; m is shifted, so no cancellation
    mean[ch] = float(shift + m);
    var[ch] = float(v);
    invstd[ch] = float(1.0 / sqrt(v + double(eps)));
    run_mean[ch] = float((1.0 - momentum) * run_mean[ch] + momentum * (shift + m));
    run_var[ch] = float((1.0 - momentum) * run_var[ch] + momentum * v * count / (count - 1));
  }
}

class BatchNorm final : public CudaKernel {
 public:
  BatchNorm(Device& dev, const NodeSpec& spec) : CudaKernel(dev, spec), attrs_(spec.bn) {
    const Shape& x = spec.in.at(0);
    if (x.size() != 4 && x.size() != 2) fail(op_, ": batchNorm expects rank 2 or 4, got ", shape_str(x));
    n_ = x[0], c_ = x[1], hw_ = x.size() == 4 ? x[2] * x[3] : 1;
    // CudaBackend::fuses_batch_norm_relu() is false, so the executor never asks for a fused ReLU here.
    if (attrs_.fuse_relu) fail(op_, ": batchNorm with a fused ReLU is not implemented on CUDA");
    if (attrs_.eps < CUDNN_BN_MIN_EPSILON) fail(op_, ": eps ", attrs_.eps, " is below cuDNN's minimum ", CUDNN_BN_MIN_EPSILON);
    x_.set_nchw(x, op_);
    CK(cudnnCreateTensorDescriptor, op_, &stat_.d);
    CK(cudnnDeriveBNTensorDescriptor, op_, stat_.d, x_.d, CUDNN_BATCHNORM_SPATIAL);
    // For frozen gamma/beta, which have no gradient buffer but cuDNN writes both.
    sink_ = static_cast<float*>(dev.alloc->alloc(2 * c_ * sizeof(float), op_ + ": gradient sink"));
  }
  ~BatchNorm() override { dev_.alloc->release(sink_); }

  size_t saved_bytes() const override { return 3 * c_ * sizeof(float); }  // batch mean, inverse std, biased var
  bool backward_reads_input(int) const override { return true; }
  std::string impl_info() const override { return "cuDNN batch norm (spatial)"; }

 protected:
  void fwd(const KernelIO& io) override {
    const float one = 1, zero = 0;
    if (!io.training) {
      CK(cudnnBatchNormalizationForwardInference, op_, dev_.cudnn, CUDNN_BATCHNORM_SPATIAL, &one, &zero, x_.d,
         io.in[0], x_.d, io.out, stat_.d, io.params[0], io.params[1], io.params[2], io.params[3], double(attrs_.eps));
      return;
    }
    // PyTorch refuses too: the unbiased variance of one value per channel is undefined.
    if (n_ * hw_ < 2) fail(op_, ": batchNorm training needs more than 1 value per channel");
    float* mean = static_cast<float*>(io.saved);
    float* invstd = mean + c_;
    float* var = invstd + c_;
    bn_stats<<<unsigned(c_), kThreads, 0, dev_.stream>>>(static_cast<const float*>(io.in[0]), mean, invstd, var,
                                                         io.params[2], io.params[3], n_, c_, hw_, attrs_.eps,
                                                         attrs_.momentum);
    check_launch("bn_stats", op_);
    CK(cudnnBatchNormalizationForwardInference, op_, dev_.cudnn, CUDNN_BATCHNORM_SPATIAL, &one, &zero, x_.d,
       io.in[0], x_.d, io.out, stat_.d, io.params[0], io.params[1], mean, var, double(attrs_.eps));
  }

  void bwd(const KernelIO& io) override {
    const float one = 1, zero = 0;
    const float* mean = static_cast<const float*>(io.saved);
    const float* invstd = mean + c_;
    float* dgamma = grad(io.param_grad, 0);
    float* dbeta = grad(io.param_grad, 1);
    float* dx = grad(io.in_grad, 0);
    if (!dx) {
      if (!dgamma && !dbeta) return;
      bn_param_grads<<<unsigned(c_), kThreads, 0, dev_.stream>>>(static_cast<const float*>(io.in[0]),
                                                                 static_cast<const float*>(io.out_grad), mean, invstd,
                                                                 dgamma, dbeta, n_, c_, hw_);
      check_launch("bn_param_grads", op_);
      return;
    }
    CK(cudnnBatchNormalizationBackward, op_, dev_.cudnn, CUDNN_BATCHNORM_SPATIAL, &one, &zero, &one, &zero, x_.d,
       io.in[0], x_.d, io.out_grad, x_.d, dx, stat_.d, io.params[0], dgamma ? dgamma : sink_,
       dbeta ? dbeta : sink_ + c_, double(attrs_.eps), mean, invstd);
  }

 private:
  BatchNormAttrs attrs_;
  int64_t n_ = 0, c_ = 0, hw_ = 1;
  TensorDesc x_, stat_;
  float* sink_ = nullptr;
};

}  // namespace

std::unique_ptr<Kernel> make_batch_norm(Device& dev, const NodeSpec& spec) {
  return std::make_unique<BatchNorm>(dev, spec);
}

}  // namespace crunet::cuda
