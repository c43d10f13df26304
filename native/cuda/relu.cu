// ReLU: y = max(x, 0); backward dx = y > 0 ? dy : 0, reading the output (as the CPU backend's
// use-dst-for-backward variant), so the planner may free the input after forward. Elementwise: any rank.
#include "kernels.h"

namespace crunet::cuda {
namespace {

__global__ void relu_fwd(const float* x, float* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = x[i] > 0.f ? x[i] : 0.f;  // NaN -> 0 (the executor rejects NaN inputs before any kernel)
}

__global__ void relu_bwd(const float* y, const float* dy, float* dx, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dx[i] = y[i] > 0.f ? dy[i] : 0.f;
}

class Relu final : public CudaKernel {
 public:
  Relu(Device& dev, const NodeSpec& spec) : CudaKernel(dev, spec), n_(numel(spec.out)) {}
  bool backward_reads_input(int) const override { return false; }
  bool backward_reads_output() const override { return true; }
  std::string impl_info() const override { return "own kernel"; }

 protected:
  void fwd(const KernelIO& io) override {
    relu_fwd<<<grid_for(n_), kThreads, 0, dev_.stream>>>(static_cast<const float*>(io.in[0]),
                                                         static_cast<float*>(io.out), n_);
    check_launch("relu_fwd", op_);
  }
  void bwd(const KernelIO& io) override {
    float* dx = grad(io.in_grad, 0);
    if (!dx) return;
    relu_bwd<<<grid_for(n_), kThreads, 0, dev_.stream>>>(static_cast<const float*>(io.out),
                                                         static_cast<const float*>(io.out_grad), dx, n_);
    check_launch("relu_bwd", op_);
  }

 private:
  int64_t n_;
};

}  // namespace

std::unique_ptr<Kernel> make_relu(Device& dev, const NodeSpec& spec) { return std::make_unique<Relu>(dev, spec); }

}  // namespace crunet::cuda
