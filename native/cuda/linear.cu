// linear on cuBLAS with PyTorch's nn.Linear semantics: y[N,O] = x[N,F] w[O,F]^T + b[O], all row-major.
// cuBLAS is column-major, so each row-major matrix is read as its transpose:
//   forward      y^T[O,N]  = w^T-read-as-[F,O]^T . x^T[F,N]  -> sgemm(T, N, O, N, F, w, F, x, F, y, O)
//   backward-x   dx^T[F,N] = w[F,O] . dy^T[O,N]              -> sgemm(N, N, F, N, O, w, F, dy, O, dx, F)
//   backward-w   dw^T[F,O] = x^T[F,N] . dy[N,O]              -> sgemm(N, T, F, O, N, x, F, dy, O, dw, F)
// Plain FP32 math (CUBLAS_DEFAULT_MATH): PyTorch's torch.backends.cuda.matmul.allow_tf32 is off by default.
#include <cassert>

#include "kernels.h"

namespace crunet::cuda {
namespace {

// y[n, o] += b[o]
__global__ void add_bias_rows(float* y, const float* b, int64_t rows, int64_t cols) {
  const int64_t total = rows * cols;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x)
    y[i] += b[i % cols];
}

// db[o] = sum_n dy[n, o]: one thread per column, rows read coalesced across the warp.
__global__ void sum_rows(float* db, const float* dy, int64_t rows, int64_t cols) {
  const int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (o >= cols) return;
  float s = 0;
  for (int64_t n = 0; n < rows; n++) s += dy[n * cols + o];
  db[o] = s;
}

class Linear final : public CudaKernel {
 public:
  Linear(Device& dev, const NodeSpec& spec) : CudaKernel(dev, spec) {
    const Shape& x = spec.in.at(0);
    n_ = x.at(0), f_ = x.at(1), o_ = spec.out.at(1);
    assert(x.size() == 2 && spec.out == (Shape{n_, o_}) && spec.params.size() == 2 && spec.params[0] == (Shape{o_, f_}) &&
           spec.params[1] == Shape{o_});  // shape inference checked these
    if (n_ > 0x7fffffff || f_ > 0x7fffffff || o_ > 0x7fffffff) fail(op_, ": dimensions exceed cuBLAS's int");
  }

  bool backward_reads_input(int) const override { return true; }  // x is needed for dW
  std::string impl_info() const override { return "cuBLAS sgemm (fp32) + bias kernels"; }

 protected:
  void fwd(const KernelIO& io) override {
    const float one = 1, zero = 0;
    const int n = int(n_), f = int(f_), o = int(o_);
    CK(cublasSgemm, op_, dev_.cublas, CUBLAS_OP_T, CUBLAS_OP_N, o, n, f, &one, io.params[0], f,
       static_cast<const float*>(io.in[0]), f, &zero, static_cast<float*>(io.out), o);
    add_bias_rows<<<grid_for(n_ * o_), kThreads, 0, dev_.stream>>>(static_cast<float*>(io.out), io.params[1], n_, o_);
    check_launch("add_bias_rows", op_);
  }

  void bwd(const KernelIO& io) override {
    const float one = 1, zero = 0;
    const int n = int(n_), f = int(f_), o = int(o_);
    const auto* dy = static_cast<const float*>(io.out_grad);
    if (float* dx = grad(io.in_grad, 0))
      CK(cublasSgemm, op_, dev_.cublas, CUBLAS_OP_N, CUBLAS_OP_N, f, n, o, &one, io.params[0], f, dy, o, &zero, dx, f);
    if (float* dw = grad(io.param_grad, 0))
      CK(cublasSgemm, op_, dev_.cublas, CUBLAS_OP_N, CUBLAS_OP_T, f, o, n, &one, static_cast<const float*>(io.in[0]),
         f, dy, o, &zero, dw, f);
    if (float* db = grad(io.param_grad, 1)) {
      sum_rows<<<unsigned((o_ + kThreads - 1) / kThreads), kThreads, 0, dev_.stream>>>(db, dy, n_, o_);
      check_launch("sum_rows", op_);
    }
  }

 private:
  int64_t n_ = 0, f_ = 0, o_ = 0;
};

}  // namespace

std::unique_ptr<Kernel> make_linear(Device& dev, const NodeSpec& spec) { return std::make_unique<Linear>(dev, spec); }

}  // namespace crunet::cuda
