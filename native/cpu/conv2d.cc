// conv2d on oneDNN with PyTorch's Conv2d semantics: NHWC activations, weights [O, C/groups, kh, kw].
//
// Activations stay NHWC in every pass and only the weights use 'any': with NHWC descriptors oneDNN picks
// fast kernels for grouped and depthwise convolutions in all three passes, while with blocked activation
// layouts backward-weights can fall back to slow gemm (or reference) code. Each pass may choose its
// own weight layout, so the user's weights are reordered into it and dW is reordered back. All
// primitives, reorders included, are built once here and share one user-mode scratchpad in io.scratch.
#include <algorithm>
#include <cassert>

#include "dnnl_util.h"
#include "kernels.h"

namespace crunet::cpu {
namespace {

using dnnl::algorithm;
using dnnl::convolution_backward_data;
using dnnl::convolution_backward_weights;
using dnnl::convolution_forward;
using dnnl::prop_kind;
// A cached reorder between two layouts of one tensor; needed() is false when they already agree.
class Relayout {
 public:
  Relayout() = default;
  Relayout(const memory::desc& from, const memory::desc& to) : from_(from), to_(to) {
    if (!needed()) return;
    pd_ = dnnl::reorder::primitive_desc(engine(), from, engine(), to, user_scratchpad());
    prim_ = dnnl::reorder(pd_);
  }
  bool needed() const { return from_ != to_; }
  size_t scratchpad_bytes() const { return needed() ? scratchpad_size(pd_) : 0; }
  void operator()(const void* src, void* dst, void* scratch, const std::string& node) const {
    Args args{{DNNL_ARG_FROM, wrap(from_, src)}, {DNNL_ARG_TO, wrap(to_, dst)}};
    add_scratchpad(args, pd_, scratch);
    run(prim_, args, node);
  }

 private:
  memory::desc from_, to_;
  dnnl::reorder::primitive_desc pd_;
  dnnl::reorder prim_;
};

// The weights in the layout one pass chose, in a kernel-owned buffer. `holds` remembers which user
// buffer was last reordered in, so backward-data can reuse forward's copy (the weights do not change
// between a forward and its backward) instead of reordering them again; a backward handed another
// weight buffer than its forward still reorders.
struct WeightCopy {
  Relayout from_user;
  memory mem;  // allocated by oneDNN (aligned); empty when the pass uses the user's layout directly
  const float* holds = nullptr;

  WeightCopy() = default;
  WeightCopy(const memory::desc& user, const memory::desc& chosen) : from_user(user, chosen) {
    if (from_user.needed()) mem = memory(chosen, engine());
  }
  // Returns the weights in the chosen layout, reordering unless `reuse` and they are already there.
  const void* get(const float* w, bool reuse, void* scratch, const std::string& node) {
    if (!from_user.needed()) return w;
    if (!reuse || holds != w) {
      from_user(w, mem.get_data_handle(), scratch, node);
      holds = w;
    }
    return mem.get_data_handle();
  }
};

class Conv2d final : public Kernel {
 public:
  explicit Conv2d(const NodeSpec& spec) : label_(node_label(spec)), bias_(spec.conv.bias) {
    const ConvAttrs& a = spec.conv;
    const Shape& x = spec.in.at(0);
    const int64_t g = a.groups, c = x.at(1), o = a.out_channels;
    assert(x.size() == 4 && spec.out.size() == 4 && c % g == 0 && o % g == 0 &&
           spec.params.at(0) == (Shape{o, c / g, a.kh, a.kw}));  // shape inference checked these

    x_md_ = act_md(x);
    y_md_ = act_md(spec.out);
    b_md_ = bias_ ? vec_md(o) : memory::desc();
    // PyTorch's [O, C/g, kh, kw] memory is exactly oneDNN's goihw with dims {g, O/g, C/g, kh, kw}.
    const memory::dims w_dims = g == 1 ? memory::dims{o, c, a.kh, a.kw} : memory::dims{g, o / g, c / g, a.kh, a.kw};
    w_user_md_ = memory::desc(w_dims, dt::f32, g == 1 ? tag::oihw : tag::goihw);
    const memory::desc w_any(w_dims, dt::f32, tag::any);
    // Right padding = left padding: oneDNN floors the output size like PyTorch, so rows a stride
    // never reaches are simply not used.
    const memory::dims strides{a.sh, a.sw}, pad{a.ph, a.pw};
    const auto attr = user_scratchpad();

    // Convolution has no training-only state, so one forward_training primitive serves inference too,
    // which also makes both modes bit-identical.
    fwd_pd_ = convolution_forward::primitive_desc(
        {prop_kind::forward_training, algorithm::convolution_direct, x_md_, w_any, b_md_, y_md_, strides, pad, pad},
        attr, engine());
    bwd_data_pd_ = convolution_backward_data::primitive_desc(
        {algorithm::convolution_direct, x_md_, w_any, y_md_, strides, pad, pad}, attr, engine(), fwd_pd_);
    bwd_w_pd_ = convolution_backward_weights::primitive_desc(
        {algorithm::convolution_direct, x_md_, w_any, b_md_, y_md_, strides, pad, pad}, attr, engine(), fwd_pd_);
    fwd_ = convolution_forward(fwd_pd_);
    bwd_data_ = convolution_backward_data(bwd_data_pd_);
    bwd_w_ = convolution_backward_weights(bwd_w_pd_);

    w_fwd_ = WeightCopy(w_user_md_, fwd_pd_.weights_desc());
    bwd_data_shares_fwd_ = bwd_data_pd_.weights_desc() == fwd_pd_.weights_desc();
    if (!bwd_data_shares_fwd_) w_bwd_data_ = WeightCopy(w_user_md_, bwd_data_pd_.weights_desc());
    dw_to_user_ = Relayout(bwd_w_pd_.diff_weights_desc(), w_user_md_);

    // io.scratch: [scratchpad | dW in the chosen layout | dB], the last two for when the result is not
    // written straight into param_grad (layout differs, or that gradient is not wanted).
    const size_t pad_bytes = std::max({scratchpad_size(fwd_pd_), scratchpad_size(bwd_data_pd_),
                                       scratchpad_size(bwd_w_pd_), w_fwd_.from_user.scratchpad_bytes(),
                                       w_bwd_data_.from_user.scratchpad_bytes(), dw_to_user_.scratchpad_bytes()});
    dw_off_ = align_up(pad_bytes);
    db_off_ = dw_off_ + align_up(bwd_w_pd_.diff_weights_desc().get_size());
    scratch_bytes_ = db_off_ + align_up(b_md_.get_size());
  }

  size_t scratch_bytes() const override { return scratch_bytes_; }
  bool backward_reads_input(int) const override { return true; }  // x is needed for dW
  bool backward_reads_output() const override { return false; }

  void forward(const KernelIO& io) override {
    Args args{{DNNL_ARG_SRC, wrap(x_md_, io.in[0])},
              {DNNL_ARG_WEIGHTS, wrap(fwd_pd_.weights_desc(), w_fwd_.get(io.params[0], false, io.scratch, label_))},
              {DNNL_ARG_DST, wrap(y_md_, io.out)}};
    if (bias_) args[DNNL_ARG_BIAS] = wrap(b_md_, io.params[1]);
    add_scratchpad(args, fwd_pd_, io.scratch);
    run(fwd_, args, label_);
  }

  void backward(const KernelIO& io) override {
    auto* scratch = static_cast<char*>(io.scratch);
    const memory dy = wrap(y_md_, io.out_grad);

    if (float* dx = grad(io.in_grad, 0)) {
      // Only forward's copy is known fresh: a backward-data-only copy is from the previous step.
      WeightCopy& w = bwd_data_shares_fwd_ ? w_fwd_ : w_bwd_data_;
      const void* wp = w.get(io.params[0], bwd_data_shares_fwd_, scratch, label_);
      Args args{{DNNL_ARG_DIFF_DST, dy},
                {DNNL_ARG_WEIGHTS, wrap(bwd_data_pd_.weights_desc(), wp)},
                {DNNL_ARG_DIFF_SRC, wrap(x_md_, dx)}};
      add_scratchpad(args, bwd_data_pd_, scratch);
      run(bwd_data_, args, label_);
    }

    float* dw = grad(io.param_grad, 0);
    float* db = bias_ ? grad(io.param_grad, 1) : nullptr;
    if (!dw && !db) return;
    void* dw_chosen = dw && !dw_to_user_.needed() ? static_cast<void*>(dw) : scratch + dw_off_;
    Args args{{DNNL_ARG_SRC, wrap(x_md_, io.in[0])},
              {DNNL_ARG_DIFF_DST, dy},
              {DNNL_ARG_DIFF_WEIGHTS, wrap(bwd_w_pd_.diff_weights_desc(), dw_chosen)}};
    if (bias_) args[DNNL_ARG_DIFF_BIAS] = wrap(b_md_, db ? static_cast<void*>(db) : scratch + db_off_);
    add_scratchpad(args, bwd_w_pd_, scratch);
    run(bwd_w_, args, label_);
    if (dw && dw_to_user_.needed()) dw_to_user_(dw_chosen, dw, scratch, label_);
  }

  std::string impl_info() const override {
    return "fwd=" + impl_of(fwd_pd_) + " bwd_data=" + impl_of(bwd_data_pd_) + " bwd_weights=" + impl_of(bwd_w_pd_);
  }

 private:
  static float* grad(const std::vector<float*>& v, size_t i) { return i < v.size() ? v[i] : nullptr; }

  std::string label_;
  bool bias_;
  memory::desc x_md_, y_md_, w_user_md_, b_md_;
  convolution_forward::primitive_desc fwd_pd_;
  convolution_backward_data::primitive_desc bwd_data_pd_;
  convolution_backward_weights::primitive_desc bwd_w_pd_;
  convolution_forward fwd_;
  convolution_backward_data bwd_data_;
  convolution_backward_weights bwd_w_;
  WeightCopy w_fwd_, w_bwd_data_;
  bool bwd_data_shares_fwd_ = false;  // backward-data chose forward's weight layout: reuse its copy
  Relayout dw_to_user_;
  size_t dw_off_ = 0, db_off_ = 0, scratch_bytes_ = 0;
};

}  // namespace

std::unique_ptr<Kernel> make_conv2d(const NodeSpec& spec) {
  try {
    return std::make_unique<Conv2d>(spec);
  } catch (const dnnl::error& e) {
    fail(node_label(spec), ": cannot build oneDNN convolution: ", e.what());
  }
}

}  // namespace crunet::cpu
