// The closed set of ops (the op table), their typed attributes, and NodeSpec: everything a backend needs
// to build a kernel for one node. Shape inference, the executor and both kernel tables read this file.
#pragma once
#include <string>
#include <vector>

#include "shape.h"

namespace crunet {

// The op table: one row per op, the only list of what an op takes (after tinygrad's Ops enum and its
// spec). X(enum name, IR name, (graph inputs), (parameter slots), (attributes)); each parenthesised
// column is a list, possibly empty. Shape inference checks arity, parameter slots and attribute names
// against it and gradients flow to the f32 inputs it lists; the addon exports it as opTable() so that a
// test holds lib/graph/ir.ts's op list to it. Shapes and attribute meanings live in shape_inference.cc.
//   inputs:     {name} an f32 input with a gradient; {name, DType::i32} an integer input (labels);
//               kData marks an input that takes no gradient (soft targets), kOptionalData one that may
//               also be left out (only at the end)
//   parameters: {name} a trainable slot; kOptional may be left out (only at the end); kState is never
//               updated by the optimizer (batch norm's running statistics, changed in place by forward)
//   attributes: {name} optional with a default; {name, kRequired} must be given
#define CRUNET_OPS(X)                                                                                          \
  X(conv2d, "conv2d", ({"x"}), ({"weight"}, {"bias", kOptional}),                                              \
    ({"outChannels", kRequired}, {"kernel", kRequired}, {"stride"}, {"padding"}, {"groups"}, {"bias"}))       \
  X(batch_norm, "batchNorm", ({"x"}), ({"weight"}, {"bias"}, {"runningMean", kState}, {"runningVar", kState}), \
    ({"momentum"}, {"eps"}, {"fuseRelu"}))                                                                     \
  X(relu, "relu", ({"x"}), (), ())                                                                             \
  X(max_pool, "maxPool", ({"x"}), (), ({"kernel", kRequired}, {"stride"}, {"padding"}))                        \
  X(avg_pool, "avgPool", ({"x"}), (), ({"kernel", kRequired}, {"stride"}, {"padding"}, {"countIncludePad"}))   \
  X(global_avg_pool, "globalAvgPool", ({"x"}), (), ())                                                         \
  X(linear, "linear", ({"x"}), ({"weight"}, {"bias"}), ({"outFeatures", kRequired}))                           \
  X(add, "add", ({"a"}, {"b"}), (), ())                                                                        \
  X(softmax_cross_entropy, "softmaxCrossEntropy",                                                              \
    ({"logits"}, {"labels", DType::i32, kData}, {"targets", DType::f32, kOptionalData}), (),                  \
    ({"topk"}, {"labelSmoothing"}))

enum class OpKind {
#define X(e, s, inputs, params, attrs) e,
  CRUNET_OPS(X)
#undef X
};

enum InputKind { kDifferentiable, kData, kOptionalData };
enum ParamKind { kTrainable, kOptional, kState };
enum AttrKind { kDefaulted, kRequired };

struct InputSlot {
  const char* name;
  DType dtype = DType::f32;
  InputKind kind = kDifferentiable;
  bool differentiable() const { return dtype == DType::f32 && kind == kDifferentiable; }
};
struct ParamSlot {
  const char* name;
  ParamKind kind = kTrainable;
};
struct AttrSlot {
  const char* name;
  AttrKind kind = kDefaulted;
};
struct OpDef {
  OpKind kind;
  const char* name;  // in the IR
  std::vector<InputSlot> inputs;
  std::vector<ParamSlot> params;
  std::vector<AttrSlot> attrs;
  int min_inputs() const {
    int n = 0;
    for (const auto& i : inputs) n += i.kind != kOptionalData;
    return n;
  }
  int min_params() const {
    int n = 0;
    for (const auto& p : params) n += p.kind != kOptional;
    return n;
  }
};

#define CRUNET_UNPARENTHESISE(...) __VA_ARGS__
// Every op, in OpKind order.
inline const std::vector<OpDef>& op_table() {
  static const std::vector<OpDef> table = {
#define X(e, s, inputs, params, attrs) \
  {OpKind::e, s, {CRUNET_UNPARENTHESISE inputs}, {CRUNET_UNPARENTHESISE params}, {CRUNET_UNPARENTHESISE attrs}},
      CRUNET_OPS(X)
#undef X
  };
  return table;
}
#undef CRUNET_UNPARENTHESISE

inline const OpDef& op_def(OpKind k) { return op_table()[static_cast<size_t>(k)]; }
inline const char* op_name(OpKind k) { return op_def(k).name; }

struct ConvAttrs {
  int out_channels = 0, kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0, groups = 1;
  bool bias = false;
};
struct PoolAttrs {
  int kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0;
  bool count_include_pad = true;  // avgPool only; PyTorch's default
};
struct BatchNormAttrs {
  float momentum = 0.1f;  // PyTorch convention: running = (1 - m) running + m batch
  float eps = 1e-5f;
  bool fuse_relu = false;  // a ReLU applied to the output (set by the executor's fusion pass, fusion.h)
};
struct CrossEntropyAttrs {
  int topk = 0;  // 0: no top-k count; else also count labels within the k largest logits
  float smoothing = 0;  // label smoothing e: the target is (1 - e) onehot(label) + e / K
};

// One node as a backend sees it: shapes are inferred and checked; the batch is in dim 0.
struct NodeSpec {
  OpKind op;
  std::string name;
  std::vector<Shape> in;      // graph inputs of the node
  Shape out;                  // its output
  std::vector<Shape> params;  // parameter slots, in the op table's order
  ConvAttrs conv;
  PoolAttrs pool;
  BatchNormAttrs bn;
  CrossEntropyAttrs xent;
};

// "node conv1 (conv2d)": how every error names a node.
inline std::string node_label(const NodeSpec& s) { return "node " + s.name + " (" + op_name(s.op) + ")"; }

}  // namespace crunet
