// Global average pooling [N,C,H,W] -> [N,C]: one warp per (n, c) plane; backward spreads dy/(H*W).
#include <cassert>

#include "kernels.h"

namespace crunet::cuda {
namespace {

__global__ void gap_fwd(const float* x, float* y, int64_t planes, int64_t hw) {
  const int64_t plane = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (plane >= planes) return;
  const float* p = x + plane * hw;
  float s = 0;
  for (int64_t i = lane; i < hw; i += 32) s += p[i];
  for (int off = 16; off > 0; off >>= 1) s += __shfl_down_sync(0xffffffffu, s, off);
  if (lane == 0) y[plane] = s / float(hw);
}

__global__ void gap_bwd(const float* dy, float* dx, int64_t planes, int64_t hw) {
  const int64_t total = planes * hw;
  const float inv = 1.f / float(hw);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x)
    dx[i] = dy[i / hw] * inv;
}

class GlobalAvgPool final : public CudaKernel {
 public:
  GlobalAvgPool(Device& dev, const NodeSpec& spec) : CudaKernel(dev, spec) {
    const Shape& x = spec.in.at(0);
    assert(x.size() == 4);  // shape inference checked it
    planes_ = x[0] * x[1];
    hw_ = x[2] * x[3];
  }
  bool backward_reads_input(int) const override { return false; }
  std::string impl_info() const override { return "own kernel (warp per plane)"; }

 protected:
  void fwd(const KernelIO& io) override {
    const int64_t threads = planes_ * 32;
    gap_fwd<<<unsigned((threads + kThreads - 1) / kThreads), kThreads, 0, dev_.stream>>>(
        static_cast<const float*>(io.in[0]), static_cast<float*>(io.out), planes_, hw_);
    check_launch("gap_fwd", op_);
  }
  void bwd(const KernelIO& io) override {
    float* dx = grad(io.in_grad, 0);
    if (!dx) return;
    gap_bwd<<<grid_for(planes_ * hw_), kThreads, 0, dev_.stream>>>(static_cast<const float*>(io.out_grad), dx,
                                                                   planes_, hw_);
    check_launch("gap_bwd", op_);
  }

 private:
  int64_t planes_ = 0, hw_ = 1;
};

}  // namespace

std::unique_ptr<Kernel> make_global_avg_pool(Device& dev, const NodeSpec& spec) {
  return std::make_unique<GlobalAvgPool>(dev, spec);
}

}  // namespace crunet::cuda
