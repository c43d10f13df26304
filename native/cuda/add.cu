// Elementwise add of two same-shape values, its backward (the gradient copied to both inputs), and the
// backend's accumulate (dst += src), which sums a gradient over the uses of a value or parameter.
#include "kernels.h"

namespace crunet::cuda {
namespace {

__global__ void add_fwd(const float* a, const float* b, float* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = a[i] + b[i];
}

__global__ void copy2(const float* g, float* ga, float* gb, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float v = g[i];
    if (ga) ga[i] = v;
    if (gb) gb[i] = v;
  }
}

__global__ void accumulate_kernel(float* dst, const float* src, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] += src[i];
}

class Add final : public CudaKernel {
 public:
  Add(Device& dev, const NodeSpec& spec) : CudaKernel(dev, spec), n_(numel(spec.out)) {}
  bool backward_reads_input(int) const override { return false; }
  std::string impl_info() const override { return "own kernel"; }

 protected:
  void fwd(const KernelIO& io) override {
    add_fwd<<<grid_for(n_), kThreads, 0, dev_.stream>>>(static_cast<const float*>(io.in[0]),
                                                        static_cast<const float*>(io.in[1]), static_cast<float*>(io.out), n_);
    check_launch("add_fwd", op_);
  }
  void bwd(const KernelIO& io) override {
    float* ga = grad(io.in_grad, 0);
    float* gb = grad(io.in_grad, 1);
    if (!ga && !gb) return;
    copy2<<<grid_for(n_), kThreads, 0, dev_.stream>>>(static_cast<const float*>(io.out_grad), ga, gb, n_);
    check_launch("add_bwd", op_);
  }

 private:
  int64_t n_;
};

}  // namespace

std::unique_ptr<Kernel> make_add(Device& dev, const NodeSpec& spec) { return std::make_unique<Add>(dev, spec); }

void accumulate(Device& dev, float* dst, const float* src, size_t n) {
  if (n == 0) return;
  accumulate_kernel<<<grid_for(n), kThreads, 0, dev.stream>>>(dst, src, int64_t(n));
  check_launch("accumulate", "accumulate (gradient sum)");
}

}  // namespace crunet::cuda
