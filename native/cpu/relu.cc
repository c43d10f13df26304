// ReLU on oneDNN eltwise. The use-dst-for-backward variant lets backward read the output instead of the
// input, so the planner can free the input early (and the op may run in place). Elementwise, so every
// rank is treated as one flat vector, whatever its layout.
#include "dnnl_util.h"
#include "kernels.h"

namespace crunet::cpu {

namespace {

constexpr auto kAlgo = dnnl::algorithm::eltwise_relu_use_dst_for_bwd;

class Relu final : public Kernel {
 public:
  explicit Relu(const NodeSpec& spec) : node_(node_label(spec)), md_(vec_md(numel(spec.out))) {
    dnnl::eltwise_forward::primitive_desc fwd_pd({dnnl::prop_kind::forward_training, kAlgo, md_}, engine());
    dnnl::eltwise_backward::primitive_desc bwd_pd({kAlgo, md_, md_}, engine(), fwd_pd);
    fwd_ = dnnl::eltwise_forward(fwd_pd);
    bwd_ = dnnl::eltwise_backward(bwd_pd);
    impl_ = impl_of(fwd_pd) + " / " + impl_of(bwd_pd);
  }

  bool backward_reads_input(int) const override { return false; }
  bool backward_reads_output() const override { return true; }
  std::string impl_info() const override { return impl_; }

  void forward(const KernelIO& io) override {
    run(fwd_, {{DNNL_ARG_SRC, wrap(md_, io.in[0])}, {DNNL_ARG_DST, wrap(md_, io.out)}}, node_);
  }

  void backward(const KernelIO& io) override {
    if (!io.in_grad[0]) return;
    run(bwd_,
        {{DNNL_ARG_DST, wrap(md_, io.out)},
         {DNNL_ARG_DIFF_DST, wrap(md_, io.out_grad)},
         {DNNL_ARG_DIFF_SRC, wrap(md_, io.in_grad[0])}},
        node_);
  }

 private:
  std::string node_;
  memory::desc md_;
  dnnl::eltwise_forward fwd_;
  dnnl::eltwise_backward bwd_;
  std::string impl_;
};

}  // namespace

std::unique_ptr<Kernel> make_relu(const NodeSpec& spec) { return std::make_unique<Relu>(spec); }

}  // namespace crunet::cpu
