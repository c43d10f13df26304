// Max, average and global average pooling (PyTorch semantics, floor mode) on oneDNN, NHWC.
// Global average pooling is a pooling whose window is the whole HxW image: its [N,C,1,1] NHWC output has the
// same bytes as the row-major [N,C] the op produces.
#include <algorithm>
#include <cassert>

#include "dnnl_util.h"
#include "kernels.h"

namespace crunet::cpu {
namespace {

using pool_fwd = dnnl::pooling_forward;
using pool_bwd = dnnl::pooling_backward;
using dims = memory::dims;

class Pool final : public Kernel {
 public:
  explicit Pool(const NodeSpec& spec) : label_(node_label(spec)), is_max_(spec.op == OpKind::max_pool) {
    const Shape& x = spec.in.at(0);
    assert(x.size() == 4);  // shape inference checked it
    const bool global = spec.op == OpKind::global_avg_pool;
    src_md_ = act_md(x);
    dst_md_ = act_md(global ? Shape{x[0], x[1], 1, 1} : spec.out);

    const PoolAttrs& p = spec.pool;
    const dims kernel = global ? dims{x[2], x[3]} : dims{p.kh, p.kw};
    const dims strides = global ? dims{1, 1} : dims{p.sh, p.sw};
    // PyTorch pads both sides equally; in floor mode that satisfies oneDNN's output-size equation, and
    // every window ends within the padded extent, so include-padding divides by kh*kw as PyTorch does.
    const dims pad = global ? dims{0, 0} : dims{p.ph, p.pw};
    auto alg = dnnl::algorithm::pooling_max;
    if (!is_max_) {
      alg = p.count_include_pad && !global ? dnnl::algorithm::pooling_avg_include_padding
                                           : dnnl::algorithm::pooling_avg_exclude_padding;
    }

    const auto attr = user_scratchpad();
    auto fwd_desc = [&](dnnl::prop_kind prop) {
      return pool_fwd::desc(prop, alg, src_md_, dst_md_, strides, kernel, pad, pad);
    };
    // The training primitive of max pooling records the argmax in a workspace that backward reads;
    // inference skips it. Average pooling has no workspace, so one primitive serves both.
    train_pd_ = pool_fwd::primitive_desc(fwd_desc(dnnl::prop_kind::forward_training), attr, engine());
    infer_pd_ = is_max_ ? pool_fwd::primitive_desc(fwd_desc(dnnl::prop_kind::forward_inference), attr, engine())
                        : train_pd_;
    bwd_pd_ = pool_bwd::primitive_desc(pool_bwd::desc(alg, src_md_, dst_md_, strides, kernel, pad, pad), attr,
                                       engine(), train_pd_);
    train_ = pool_fwd(train_pd_);
    infer_ = is_max_ ? pool_fwd(infer_pd_) : train_;
    bwd_ = pool_bwd(bwd_pd_);
    ws_md_ = train_pd_.workspace_desc();
    scratch_md_ = memory::desc({int64_t(scratch_bytes())}, dt::u8, tag::a);
  }

  size_t saved_bytes() const override { return ws_md_.get_size(); }
  size_t scratch_bytes() const override {
    return std::max({scratchpad_size(train_pd_), scratchpad_size(infer_pd_), scratchpad_size(bwd_pd_)});
  }
  bool backward_reads_input(int) const override { return false; }

  void forward(const KernelIO& io) override {
    std::unordered_map<int, memory> args = {
        {DNNL_ARG_SRC, wrap(src_md_, io.in[0])},
        {DNNL_ARG_DST, wrap(dst_md_, io.out)},
        {DNNL_ARG_SCRATCHPAD, wrap(scratch_md_, io.scratch)},
    };
    if (!io.training) {
      run(infer_, args, label_);
      return;
    }
    if (is_max_) args[DNNL_ARG_WORKSPACE] = wrap(ws_md_, io.saved);
    run(train_, args, label_);
  }

  void backward(const KernelIO& io) override {
    if (!io.in_grad[0]) return;
    std::unordered_map<int, memory> args = {
        {DNNL_ARG_DIFF_DST, wrap(dst_md_, io.out_grad)},
        {DNNL_ARG_DIFF_SRC, wrap(src_md_, io.in_grad[0])},
        {DNNL_ARG_SCRATCHPAD, wrap(scratch_md_, io.scratch)},
    };
    if (is_max_) args[DNNL_ARG_WORKSPACE] = wrap(ws_md_, io.saved);
    run(bwd_, args, label_);
  }

  std::string impl_info() const override {
    std::string s = "fwd " + impl_of(train_pd_);
    if (is_max_) s += ", infer " + impl_of(infer_pd_);
    return s + ", bwd " + impl_of(bwd_pd_);
  }

 private:
  std::string label_;
  bool is_max_;
  memory::desc src_md_, dst_md_, ws_md_, scratch_md_;
  pool_fwd::primitive_desc train_pd_, infer_pd_;
  pool_bwd::primitive_desc bwd_pd_;
  pool_fwd train_, infer_;
  pool_bwd bwd_;
};

}  // namespace

std::unique_ptr<Kernel> make_pool(const NodeSpec& spec) {
  try {
    return std::make_unique<Pool>(spec);
  } catch (const dnnl::error& e) {
    fail(node_label(spec), ": oneDNN has no kernel for ", shape_str(spec.in.at(0)), ": ",
         e.what());
  }
}

}  // namespace crunet::cpu
