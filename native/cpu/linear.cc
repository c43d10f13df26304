// linear on oneDNN with PyTorch's nn.Linear semantics: y[N,O] = x[N,F] w[O,F]^T + b[O], all row-major.
//
// Every pass runs on the user's memory as it is, with no weight reorders. Forward is a matmul that
// reads w[O,F] as the transposed [F,O] operand: measured here (N=32, F=2048, O=1000) the plain-layout
// inner_product forward takes 4.9 ms against 0.8 ms for matmul, and letting inner_product choose a
// blocked weight layout costs a 3 ms reorder per step. The plain-layout inner_product backward passes
// are as fast as matmul (0.7-1 ms there) and give dB for free, so backward uses them.
#include <algorithm>
#include <cassert>

#include "dnnl_util.h"
#include "kernels.h"

namespace crunet::cpu {
namespace {

using dnnl::inner_product_backward_data;
using dnnl::inner_product_backward_weights;
using dnnl::inner_product_forward;
using dnnl::matmul;
using dnnl::prop_kind;
class Linear final : public Kernel {
 public:
  explicit Linear(const NodeSpec& spec) : label_(node_label(spec)) {
    const Shape& x = spec.in.at(0);
    const int64_t f = x.at(1), o = spec.out.at(1);
    assert(x.size() == 2 && spec.out == (Shape{x[0], o}) && spec.params.size() == 2 && spec.params[0] == (Shape{o, f}) &&
           spec.params[1] == Shape{o});  // shape inference checked these

    x_md_ = mat_md(x);
    y_md_ = mat_md(spec.out);
    w_md_ = memory::desc({o, f}, dt::f32, tag::ab);
    b_md_ = vec_md(o);
    const auto attr = user_scratchpad();

    // The same bytes as w[O,F] and b[O], seen as matmul's [F,O] weights and [1,O] broadcast bias.
    fwd_pd_ = matmul::primitive_desc({x_md_, memory::desc({f, o}, dt::f32, tag::ba),
                                      memory::desc({1, o}, dt::f32, tag::ab), y_md_},
                                     attr, engine());
    // Backward primitives need an inner_product forward descriptor as their hint; it is never run.
    const inner_product_forward::primitive_desc hint(
        {prop_kind::forward_training, x_md_, w_md_, b_md_, y_md_}, engine());
    bwd_data_pd_ = inner_product_backward_data::primitive_desc({x_md_, w_md_, y_md_}, attr, engine(), hint);
    bwd_w_pd_ = inner_product_backward_weights::primitive_desc({x_md_, w_md_, b_md_, y_md_}, attr, engine(), hint);
    // Plain formats were asked for; a library that ignored that would silently misread the buffers.
    if (bwd_data_pd_.weights_desc() != w_md_ || bwd_w_pd_.diff_weights_desc() != w_md_)
      fail(label_, ": oneDNN inner_product did not accept plain [O,F] weights");
    fwd_ = matmul(fwd_pd_);
    bwd_data_ = inner_product_backward_data(bwd_data_pd_);
    bwd_w_ = inner_product_backward_weights(bwd_w_pd_);

    // io.scratch: [scratchpad | dW | dB], the last two for gradients the executor does not want.
    const size_t pad_bytes =
        std::max({scratchpad_size(fwd_pd_), scratchpad_size(bwd_data_pd_), scratchpad_size(bwd_w_pd_)});
    dw_off_ = align_up(pad_bytes);
    db_off_ = dw_off_ + align_up(w_md_.get_size());
    scratch_bytes_ = db_off_ + align_up(b_md_.get_size());
  }

  size_t scratch_bytes() const override { return scratch_bytes_; }
  bool backward_reads_input(int) const override { return true; }  // x is needed for dW
  bool backward_reads_output() const override { return false; }

  void forward(const KernelIO& io) override {
    Args args{{DNNL_ARG_SRC, wrap(x_md_, io.in[0])},
              {DNNL_ARG_WEIGHTS, wrap(fwd_pd_.weights_desc(), io.params[0])},
              {DNNL_ARG_BIAS, wrap(fwd_pd_.bias_desc(), io.params[1])},
              {DNNL_ARG_DST, wrap(y_md_, io.out)}};
    add_scratchpad(args, fwd_pd_, io.scratch);
    run(fwd_, args, label_);
  }

  void backward(const KernelIO& io) override {
    auto* scratch = static_cast<char*>(io.scratch);
    const memory dy = wrap(y_md_, io.out_grad);
    if (float* dx = grad(io.in_grad, 0)) {
      Args args{{DNNL_ARG_DIFF_DST, dy}, {DNNL_ARG_WEIGHTS, wrap(w_md_, io.params[0])}, {DNNL_ARG_DIFF_SRC, wrap(x_md_, dx)}};
      add_scratchpad(args, bwd_data_pd_, scratch);
      run(bwd_data_, args, label_);
    }
    float* dw = grad(io.param_grad, 0);
    float* db = grad(io.param_grad, 1);
    if (!dw && !db) return;
    Args args{{DNNL_ARG_SRC, wrap(x_md_, io.in[0])},
              {DNNL_ARG_DIFF_DST, dy},
              {DNNL_ARG_DIFF_WEIGHTS, wrap(w_md_, dw ? static_cast<void*>(dw) : scratch + dw_off_)},
              {DNNL_ARG_DIFF_BIAS, wrap(b_md_, db ? static_cast<void*>(db) : scratch + db_off_)}};
    add_scratchpad(args, bwd_w_pd_, scratch);
    run(bwd_w_, args, label_);
  }

  std::string impl_info() const override {
    return "fwd=matmul:" + impl_of(fwd_pd_) + " bwd_data=" + impl_of(bwd_data_pd_) +
           " bwd_weights=" + impl_of(bwd_w_pd_);
  }

 private:
  static float* grad(const std::vector<float*>& v, size_t i) { return i < v.size() ? v[i] : nullptr; }

  std::string label_;
  memory::desc x_md_, y_md_, w_md_, b_md_;
  matmul::primitive_desc fwd_pd_;
  inner_product_backward_data::primitive_desc bwd_data_pd_;
  inner_product_backward_weights::primitive_desc bwd_w_pd_;
  matmul fwd_;
  inner_product_backward_data bwd_data_;
  inner_product_backward_weights bwd_w_;
  size_t dw_off_ = 0, db_off_ = 0, scratch_bytes_ = 0;
};

}  // namespace

std::unique_ptr<Kernel> make_linear(const NodeSpec& spec) {
  try {
    return std::make_unique<Linear>(spec);
  } catch (const dnnl::error& e) {
    fail(node_label(spec), ": cannot build oneDNN linear: ", e.what());
  }
}

}  // namespace crunet::cpu
