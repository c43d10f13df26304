// Graph validation and shape inference: every check names the node, what was expected and what was
// received. Shape and group rules live here once: backends compute, and at most assert what was checked here.
#include <cmath>
#include <set>

#include "error.h"
#include "graph.h"

namespace crunet {
namespace {

// The op table by IR name.
const std::map<std::string, const OpDef*>& op_by_name() {
  static const std::map<std::string, const OpDef*> m = [] {
    std::map<std::string, const OpDef*> r;
    for (const auto& d : op_table()) r.emplace(d.name, &d);
    return r;
  }();
  return m;
}

std::string known_ops() {
  std::string s;
  for (auto& [name, def] : op_by_name()) s += (s.empty() ? "" : ", ") + name;
  return s;
}

// Reads attributes of one node, with defaults, checking types and ranges.
class AttrReader {
 public:
  AttrReader(const NodeDesc& n) : n_(n) {}
  bool has(const std::string& k) const { return n_.attrs.count(k) > 0; }
  int integer(const std::string& k, int def, int min) const {
    auto v = get(k);
    if (v.empty()) return def;
    if (v.size() != 1) bad(k, "a single integer", v);
    return check_int(k, v[0], min);
  }
  std::pair<int, int> pair(const std::string& k, std::pair<int, int> def, int min) const {
    auto v = get(k);
    if (v.empty()) return def;
    if (v.size() == 1) return {check_int(k, v[0], min), check_int(k, v[0], min)};
    if (v.size() != 2) bad(k, "an integer or a pair of integers", v);
    return {check_int(k, v[0], min), check_int(k, v[1], min)};
  }
  double number(const std::string& k, double def) const {
    auto v = get(k);
    if (v.empty()) return def;
    if (v.size() != 1 || !std::isfinite(v[0])) bad(k, "a finite number", v);
    return v[0];
  }
 private:
  std::vector<double> get(const std::string& k) const {
    auto it = n_.attrs.find(k);
    return it == n_.attrs.end() ? std::vector<double>{} : it->second;
  }
  int check_int(const std::string& k, double x, int min) const {
    if (x != std::floor(x) || x < min || x > kMaxDim)
      bad(k, "an integer in [" + std::to_string(min) + ", " + std::to_string(kMaxDim) + "]", {x});
    return static_cast<int>(x);
  }
  [[noreturn]] void bad(const std::string& k, const std::string& want, const std::vector<double>& v) const {
    std::string got;
    for (double x : v) got += (got.empty() ? "" : ",") + std::to_string(x);
    fail("node ", n_.name, " (", n_.op, "): attribute '", k, "' must be ", want, ", got [", got, "]");
  }
  const NodeDesc& n_;
};

int64_t out_size(int64_t in, int k, int s, int p) { return (in + 2 * p - k) / s + 1; }

void expect_rank(const NodeDesc& n, const Shape& s, size_t rank, const char* what) {
  if (s.size() != rank) fail("node ", n.name, " (", n.op, "): expected ", what, " but got shape ", shape_str(s));
}

void expect_param(const NodeDesc& n, const ParamDesc& p, const Shape& want) {
  if (p.shape != want)
    fail("node ", n.name, " (", n.op, "): parameter ", p.name, " has shape ", shape_str(p.shape), ", expected ",
         shape_str(want));
}

// Fills spec (attributes, output shape) and checks inputs and parameters of one node.
void infer_node(const NodeDesc& n, const OpDef& def, NodeSpec& spec, const std::vector<const ParamDesc*>& params) {
  AttrReader a(n);
  const Shape& x = spec.in[0];
  switch (def.kind) {
    case OpKind::conv2d: {
      expect_rank(n, x, 4, "an input [N,C,H,W]");
      auto& c = spec.conv;
      c.out_channels = a.integer("outChannels", 0, 1);
      std::tie(c.kh, c.kw) = a.pair("kernel", {1, 1}, 1);
      std::tie(c.sh, c.sw) = a.pair("stride", {1, 1}, 1);
      std::tie(c.ph, c.pw) = a.pair("padding", {0, 0}, 0);
      c.groups = a.integer("groups", 1, 1);
      c.bias = params.size() == 2;
      if (a.has("bias") && (a.number("bias", 0) != 0) != c.bias)
        fail("node ", n.name, " (conv2d): attribute bias=", a.number("bias", 0), " but ", params.size(), " parameters given");
      if (x[1] % c.groups || c.out_channels % c.groups)
        fail("node ", n.name, " (conv2d): groups (", c.groups, ") must divide input channels (", x[1],
             ") and outChannels (", c.out_channels, ")");
      int64_t oh = out_size(x[2], c.kh, c.sh, c.ph), ow = out_size(x[3], c.kw, c.sw, c.pw);
      if (x[2] + 2 * c.ph < c.kh || x[3] + 2 * c.pw < c.kw)
        fail("node ", n.name, " (conv2d): input ", x[2], "x", x[3], " with padding ", c.ph, "x", c.pw,
             " is smaller than the kernel ", c.kh, "x", c.kw);
      expect_param(n, *params[0], {c.out_channels, x[1] / c.groups, c.kh, c.kw});
      if (c.bias) expect_param(n, *params[1], {c.out_channels});
      spec.out = {x[0], c.out_channels, oh, ow};
      break;
    }
    case OpKind::batch_norm: {
      if (x.size() != 4 && x.size() != 2) expect_rank(n, x, 4, "an input [N,C,H,W] or [N,C]");
      spec.bn.momentum = static_cast<float>(a.number("momentum", 0.1));
      spec.bn.eps = static_cast<float>(a.number("eps", 1e-5));
      spec.bn.fuse_relu = a.number("fuseRelu", 0) != 0;
      if (spec.bn.momentum < 0 || spec.bn.momentum > 1)
        fail("node ", n.name, " (batchNorm): momentum must be in [0,1], got ", spec.bn.momentum);
      if (!(spec.bn.eps > 0)) fail("node ", n.name, " (batchNorm): eps must be > 0, got ", spec.bn.eps);
      for (auto* p : params) expect_param(n, *p, {x[1]});
      if (numel(x) / x[1] < 2)
        fail("node ", n.name, " (batchNorm): training needs more than one value per channel, got input ", shape_str(x));
      spec.out = x;
      break;
    }
    case OpKind::relu:
      spec.out = x;
      break;
    case OpKind::max_pool:
    case OpKind::avg_pool: {
      expect_rank(n, x, 4, "an input [N,C,H,W]");
      auto& p = spec.pool;
      std::tie(p.kh, p.kw) = a.pair("kernel", {1, 1}, 1);
      std::tie(p.sh, p.sw) = a.pair("stride", {p.kh, p.kw}, 1);
      std::tie(p.ph, p.pw) = a.pair("padding", {0, 0}, 0);
      p.count_include_pad = a.number("countIncludePad", 1) != 0;
      if (2 * p.ph > p.kh || 2 * p.pw > p.kw)
        fail("node ", n.name, " (", n.op, "): padding ", p.ph, "x", p.pw, " must be at most half the kernel ", p.kh,
             "x", p.kw);
      if (x[2] + 2 * p.ph < p.kh || x[3] + 2 * p.pw < p.kw)
        fail("node ", n.name, " (", n.op, "): input ", x[2], "x", x[3], " is smaller than the kernel ", p.kh, "x", p.kw);
      spec.out = {x[0], x[1], out_size(x[2], p.kh, p.sh, p.ph), out_size(x[3], p.kw, p.sw, p.pw)};
      break;
    }
    case OpKind::global_avg_pool:
      expect_rank(n, x, 4, "an input [N,C,H,W]");
      spec.out = {x[0], x[1]};
      break;
    case OpKind::linear: {
      expect_rank(n, x, 2, "an input [N,F]");
      int o = a.integer("outFeatures", 0, 1);
      expect_param(n, *params[0], {o, x[1]});
      expect_param(n, *params[1], {o});
      spec.out = {x[0], o};
      break;
    }
    case OpKind::add:
      if (spec.in[0] != spec.in[1])
        fail("node ", n.name, " (add): operands must have the same shape, got ", shape_str(spec.in[0]), " and ",
             shape_str(spec.in[1]));
      spec.out = x;
      break;
    case OpKind::softmax_cross_entropy:
      expect_rank(n, x, 2, "logits [N,K]");
      if (spec.in[1] != Shape{x[0]}) fail("node ", n.name, " (softmaxCrossEntropy): labels must have shape [", x[0], "], got ", shape_str(spec.in[1]));
      if (spec.in.size() == 3 && spec.in[2] != x)
        fail("node ", n.name, " (softmaxCrossEntropy): soft targets must have the logits' shape ", shape_str(x), ", got ", shape_str(spec.in[2]));
      spec.xent.topk = a.integer("topk", 0, 0);
      if (spec.xent.topk > x[1])
        fail("node ", n.name, " (softmaxCrossEntropy): topk (", spec.xent.topk, ") exceeds the number of classes (", x[1], ")");
      {
        const double e = a.number("labelSmoothing", 0);
        spec.xent.smoothing = static_cast<float>(e);  // checked as the kernels will use it: 1 - 1e-9 rounds to 1
        if (!(spec.xent.smoothing >= 0 && spec.xent.smoothing < 1))
          fail("node ", n.name, " (softmaxCrossEntropy): labelSmoothing must be in [0, 1) in float32, got ", e);
      }
      spec.out = {};
      break;
  }
}

}  // namespace

TypedGraph infer_shapes(const GraphDesc& g, int64_t batch) {
  if (batch < 1) fail("batchSize must be a positive integer, got ", batch);
  TypedGraph t;
  auto add_value = [&](const std::string& name, Shape shape, DType dtype, int producer, const char* what) {
    if (name.empty()) fail(what, ": a name must be a non-empty string");
    if (!t.value_by_name.emplace(name, static_cast<int>(t.values.size())).second)
      fail(what, " ", name, ": the name is already used by another input or node");
    t.values.push_back({name, std::move(shape), dtype, producer, -1, {}});
  };
  for (size_t i = 0; i < g.inputs.size(); i++) {
    const auto& in = g.inputs[i];
    Shape s{batch};
    for (auto d : in.shape) {
      if (d < 1 || d > kMaxDim)
        fail("input ", in.name, ": shape must hold integers in [1, ", kMaxDim, "], got ", shape_str(in.shape));
      s.push_back(d);
    }
    if (checked_numel(s) < 0)
      fail("input ", in.name, ": ", shape_str(s), " (batch ", batch, ") would have more than 2^48 elements");
    if (in.dtype == DType::f32 && s.size() != 4 && s.size() != 2)
      fail("input ", in.name, ": f32 inputs must be [C,H,W] or [F] per sample, got ", shape_str(in.shape));
    if (in.dtype == DType::i32 && s.size() != 1) fail("input ", in.name, ": i32 inputs (labels) must have per-sample shape [], got ", shape_str(in.shape));
    add_value(in.name, s, in.dtype, -1, "input");
    t.values.back().input_index = static_cast<int>(i);
  }
  for (size_t i = 0; i < g.params.size(); i++) {
    const auto& p = g.params[i];
    for (auto d : p.shape)
      if (d < 1 || d > kMaxDim)
        fail("parameter ", p.name, ": shape must hold integers in [1, ", kMaxDim, "], got ", shape_str(p.shape));
    if (checked_numel(p.shape) < 0) fail("parameter ", p.name, ": ", shape_str(p.shape), " would have more than 2^48 elements");
    if (!t.param_by_name.emplace(p.name, static_cast<int>(i)).second) fail("parameter ", p.name, ": defined twice");
  }
  t.params = g.params;

  for (const auto& n : g.nodes) {
    auto def_it = op_by_name().find(n.op);
    if (def_it == op_by_name().end()) fail("node ", n.name, ": unknown op '", n.op, "' (known ops: ", known_ops(), ")");
    const OpDef& def = *def_it->second;
    for (auto& [k, v] : n.attrs) {
      bool known = false;
      for (const auto& a : def.attrs) known |= k == a.name;
      if (!known) {
        std::set<std::string> allowed;  // sorted, as the message has always listed them
        for (const auto& a : def.attrs) allowed.insert(a.name);
        std::string list;
        for (auto& s : allowed) list += (list.empty() ? "" : ", ") + s;
        fail("node ", n.name, " (", n.op, "): unknown attribute '", k, "' (allowed: ", list.empty() ? "none" : list, ")");
      }
    }
    for (const auto& a : def.attrs)
      if (a.kind == kRequired && !n.attrs.count(a.name)) fail("node ", n.name, " (", n.op, "): missing attribute '", a.name, "'");
    const int ni = static_cast<int>(n.inputs.size()), min_inputs = def.min_inputs(), max_inputs = static_cast<int>(def.inputs.size());
    if (ni < min_inputs || ni > max_inputs)
      fail("node ", n.name, " (", n.op, "): expected ", min_inputs,
           max_inputs != min_inputs ? " or " + std::to_string(max_inputs) : std::string(), " inputs, got ", ni);
    const int np = static_cast<int>(n.params.size()), min_params = def.min_params(), max_params = static_cast<int>(def.params.size());
    if (np < min_params || np > max_params)
      fail("node ", n.name, " (", n.op, "): expected ", min_params,
           max_params != min_params ? " or " + std::to_string(max_params) : std::string(), " parameters, got ", np);

    NodeInfo info;
    info.spec.op = def.kind;
    info.spec.name = n.name;
    for (size_t j = 0; j < n.inputs.size(); j++) {
      auto it = t.value_by_name.find(n.inputs[j]);
      if (it == t.value_by_name.end())
        fail("node ", n.name, " (", n.op, "): input '", n.inputs[j], "' is not a graph input or an earlier node");
      const ValueInfo& v = t.values[it->second];
      const DType want = def.inputs[j].dtype;
      if (v.dtype != want)
        fail("node ", n.name, " (", n.op, "): input ", j, " (", v.name, ") must be ", dtype_name(want), ", got ", dtype_name(v.dtype));
      info.inputs.push_back(it->second);
      info.spec.in.push_back(v.shape);
    }
    std::vector<const ParamDesc*> params;
    for (auto& pname : n.params) {
      auto it = t.param_by_name.find(pname);
      if (it == t.param_by_name.end()) fail("node ", n.name, " (", n.op, "): unknown parameter '", pname, "'");
      info.params.push_back(it->second);
      params.push_back(&t.params[it->second]);
      info.spec.params.push_back(t.params[it->second].shape);
    }
    for (size_t j = 0; j < params.size(); j++)
      if (def.params[j].kind == kState && params[j]->trainable)
        fail("node ", n.name, " (", n.op, "): ", def.params[j].name, " parameter ", params[j]->name, " must not be trainable");
    infer_node(n, def, info.spec, params);
    if (checked_numel(info.spec.out) < 0)
      fail("node ", n.name, " (", n.op, "): its output ", shape_str(info.spec.out), " would have more than 2^48 elements");

    int node_index = static_cast<int>(t.nodes.size());
    for (size_t j = 0; j < info.inputs.size(); j++) t.values[info.inputs[j]].uses.push_back({node_index, static_cast<int>(j)});
    add_value(n.name, info.spec.out, DType::f32, node_index, "node");
    info.output = static_cast<int>(t.values.size()) - 1;
    t.nodes.push_back(std::move(info));
  }

  if (g.outputs.empty() && g.loss.empty()) fail("graph: no outputs and no loss: nothing to compute");
  for (auto& o : g.outputs) {
    auto it = t.value_by_name.find(o);
    if (it == t.value_by_name.end()) fail("graph: output '", o, "' is not a value of the graph");
    if (t.values[it->second].dtype != DType::f32) fail("graph: output '", o, "' must be f32");
    t.outputs.push_back(it->second);
  }
  if (!g.loss.empty()) {
    auto it = t.value_by_name.find(g.loss);
    if (it == t.value_by_name.end() || t.values[it->second].producer < 0 ||
        t.nodes[t.values[it->second].producer].spec.op != OpKind::softmax_cross_entropy)
      fail("graph: loss '", g.loss, "' must name a softmaxCrossEntropy node");
    t.loss_node = t.values[it->second].producer;
  }
  return t;
}

}  // namespace crunet
