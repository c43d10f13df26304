// conv2d on cuDNN with PyTorch's Conv2d semantics: NCHW f32 activations, weights [O, C/groups, kh, kw]
// (cuDNN's KCRS filter layout, the same bytes), grouped and depthwise through the group count.
// Forward, backward-data and backward-filter keep their own convolution descriptor, because each runs
// with the math type of the algorithm chosen for it (conv_algo.h). Algorithms are chosen here, once,
// at compile time; the executor's shared scratch holds the largest workspace of the three.
#include <algorithm>
#include <cassert>

#include "conv_algo.h"
#include "kernels.h"

namespace crunet::cuda {
namespace {

struct FilterDesc {
  cudnnFilterDescriptor_t d = nullptr;
  ~FilterDesc() { if (d) cudnnDestroyFilterDescriptor(d); }
};
struct ConvDesc {
  cudnnConvolutionDescriptor_t d = nullptr;
  ~ConvDesc() { if (d) cudnnDestroyConvolutionDescriptor(d); }
};

class Conv2d final : public CudaKernel {
 public:
  Conv2d(Device& dev, const NodeSpec& spec) : CudaKernel(dev, spec), bias_(spec.conv.bias) {
    const ConvAttrs& a = spec.conv;
    const Shape& x = spec.in.at(0);
    const int64_t g = a.groups, c = x.at(1), o = a.out_channels;
    assert(x.size() == 4 && spec.out.size() == 4 && c % g == 0 && o % g == 0 &&
           spec.params.at(0) == (Shape{o, c / g, a.kh, a.kw}));  // shape inference checked these
    x_.set_nchw(x, op_);
    y_.set_nchw(spec.out, op_);
    if (bias_) b_.set_nchw(Shape{1, o, 1, 1}, op_);
    CK(cudnnCreateFilterDescriptor, op_, &w_.d);
    CK(cudnnSetFilter4dDescriptor, op_, w_.d, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, int(o), int(c / g), a.kh, a.kw);
    for (auto& cd : conv_) {
      CK(cudnnCreateConvolutionDescriptor, op_, &cd.d);
      CK(cudnnSetConvolution2dDescriptor, op_, cd.d, a.ph, a.pw, a.sh, a.sw, 1, 1, CUDNN_CROSS_CORRELATION,
         CUDNN_DATA_FLOAT);
      CK(cudnnSetConvolutionGroupCount, op_, cd.d, int(g));
    }
    // cuDNN must agree with shape inference on the output size (PyTorch's floor formula): it writes what
    // it computes, into a buffer sized by shape inference.
    int on = 0, oc = 0, oh = 0, ow = 0;
    CK(cudnnGetConvolution2dForwardOutputDim, op_, conv_[0].d, x_.d, w_.d, &on, &oc, &oh, &ow);
    if (Shape{on, oc, oh, ow} != spec.out)
      fail(op_, ": cuDNN computes output ", shape_str(Shape{on, oc, oh, ow}), " but the graph expects ",
           shape_str(spec.out));

    ConvKey key{};  // zeroed: padding bytes included, it is compared bytewise
    key.device = dev.index;
    key.dtype = CUDNN_DATA_FLOAT;
    key.layout = CUDNN_TENSOR_NCHW;
    key.n = int(x[0]), key.c = int(c), key.h = int(x[2]), key.w = int(x[3]), key.o = int(o);
    key.kh = a.kh, key.kw = a.kw, key.ph = a.ph, key.pw = a.pw, key.sh = a.sh, key.sw = a.sw, key.dh = 1, key.dw = 1;
    key.groups = int(g);
    key.deterministic = dev.options.deterministic, key.allow_tf32 = dev.options.allow_tf32;
    key.benchmark = dev.options.benchmark, key.benchmark_limit = dev.options.benchmark ? dev.options.benchmark_limit : 0;
    for (int i = 0; i < 3; i++) {
      ConvDescs d{x_.d, y_.d, w_.d, conv_[i].d};
      algo_[i] = choose_algo(dev, ConvDir(i), key, d, op_);
    }
  }

  size_t scratch_bytes() const override {
    return std::max({algo_[0].workspace, algo_[1].workspace, algo_[2].workspace});
  }
  bool backward_reads_input(int) const override { return true; }  // x is needed for dW
  std::string impl_info() const override {
    return "cuDNN fwd=" + algo_[0].describe(ConvDir::forward) + " bwd_data=" +
           algo_[1].describe(ConvDir::backward_data) + " bwd_filter=" + algo_[2].describe(ConvDir::backward_filter);
  }
  std::string report_json() const override {
    return "[" + algo_[0].json(ConvDir::forward) + "," + algo_[1].json(ConvDir::backward_data) + "," +
           algo_[2].json(ConvDir::backward_filter) + "]";
  }

 protected:
  void fwd(const KernelIO& io) override {
    const float one = 1, zero = 0;
    CK(cudnnConvolutionForward, op_, dev_.cudnn, &one, x_.d, io.in[0], w_.d, io.params[0], conv_[0].d,
       cudnnConvolutionFwdAlgo_t(algo_[0].algo), io.scratch, algo_[0].workspace, &zero, y_.d, io.out);
    if (bias_) CK(cudnnAddTensor, op_, dev_.cudnn, &one, b_.d, io.params[1], &one, y_.d, io.out);
  }

  void bwd(const KernelIO& io) override {
    const float one = 1, zero = 0;
    if (float* dx = grad(io.in_grad, 0))
      CK(cudnnConvolutionBackwardData, op_, dev_.cudnn, &one, w_.d, io.params[0], y_.d, io.out_grad, conv_[1].d,
         cudnnConvolutionBwdDataAlgo_t(algo_[1].algo), io.scratch, algo_[1].workspace, &zero, x_.d, dx);
    if (float* dw = grad(io.param_grad, 0))
      CK(cudnnConvolutionBackwardFilter, op_, dev_.cudnn, &one, x_.d, io.in[0], y_.d, io.out_grad, conv_[2].d,
         cudnnConvolutionBwdFilterAlgo_t(algo_[2].algo), io.scratch, algo_[2].workspace, &zero, w_.d, dw);
    if (float* db = bias_ ? grad(io.param_grad, 1) : nullptr)
      CK(cudnnConvolutionBackwardBias, op_, dev_.cudnn, &one, y_.d, io.out_grad, &zero, b_.d, db);
  }

 private:
  bool bias_;
  TensorDesc x_, y_, b_;
  FilterDesc w_;
  ConvDesc conv_[3];  // forward, backward-data, backward-filter
  AlgoChoice algo_[3];
};

}  // namespace

std::unique_ptr<Kernel> make_conv2d(Device& dev, const NodeSpec& spec) { return std::make_unique<Conv2d>(dev, spec); }

}  // namespace crunet::cuda
