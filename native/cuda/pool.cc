// Max and average pooling (PyTorch semantics, floor mode, symmetric padding) on cuDNN, NCHW.
// Max pooling ignores padded positions (as PyTorch's -inf padding); average pooling divides by kh*kw
// (countIncludePad, PyTorch's default) or by the window's positions inside the image. cuDNN's pooling
// backward reads x and y, so both stay alive until backward. Global average pooling: global_avg_pool.cu.
#include <cassert>

#include "kernels.h"

namespace crunet::cuda {
namespace {

struct PoolDesc {
  cudnnPoolingDescriptor_t d = nullptr;
  ~PoolDesc() { if (d) cudnnDestroyPoolingDescriptor(d); }
};

class Pool final : public CudaKernel {
 public:
  Pool(Device& dev, const NodeSpec& spec) : CudaKernel(dev, spec) {
    const Shape& x = spec.in.at(0);
    assert(x.size() == 4);  // shape inference checked it
    const PoolAttrs& p = spec.pool;
    cudnnPoolingMode_t mode = CUDNN_POOLING_MAX_DETERMINISTIC;
    if (spec.op == OpKind::avg_pool)
      mode = p.count_include_pad ? CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING : CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING;
    x_.set_nchw(x, op_);
    y_.set_nchw(spec.out, op_);
    CK(cudnnCreatePoolingDescriptor, op_, &pool_.d);
    CK(cudnnSetPooling2dDescriptor, op_, pool_.d, mode, CUDNN_PROPAGATE_NAN, p.kh, p.kw, p.ph, p.pw, p.sh, p.sw);
    int on = 0, oc = 0, oh = 0, ow = 0;
    CK(cudnnGetPooling2dForwardOutputDim, op_, pool_.d, x_.d, &on, &oc, &oh, &ow);
    if (Shape{on, oc, oh, ow} != spec.out)
      fail(op_, ": cuDNN computes output ", shape_str(Shape{on, oc, oh, ow}), " but the graph expects ",
           shape_str(spec.out));
  }

  bool backward_reads_input(int) const override { return true; }
  bool backward_reads_output() const override { return true; }
  std::string impl_info() const override { return "cuDNN pooling"; }

 protected:
  void fwd(const KernelIO& io) override {
    const float one = 1, zero = 0;
    CK(cudnnPoolingForward, op_, dev_.cudnn, pool_.d, &one, x_.d, io.in[0], &zero, y_.d, io.out);
  }
  void bwd(const KernelIO& io) override {
    float* dx = grad(io.in_grad, 0);
    if (!dx) return;
    const float one = 1, zero = 0;
    CK(cudnnPoolingBackward, op_, dev_.cudnn, pool_.d, &one, y_.d, io.out, y_.d, io.out_grad, x_.d, io.in[0], &zero,
       x_.d, dx);
  }

 private:
  TensorDesc x_, y_;
  PoolDesc pool_;
};

}  // namespace

std::unique_ptr<Kernel> make_pool(Device& dev, const NodeSpec& spec) { return std::make_unique<Pool>(dev, spec); }

}  // namespace crunet::cuda
