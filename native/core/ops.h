// The closed set of ops, their typed attributes, and NodeSpec: everything a backend needs to build a
// kernel for one node. Parsing, shape inference and both kernel tables read this one file.
#pragma once
#include <string>
#include <vector>

#include "shape.h"

namespace crunet {

// X(enum name, IR name, number of graph inputs, parameter slots)
#define CRUNET_OPS(X)                                                                       \
  X(conv2d, "conv2d")                   /* in: x[N,C,H,W]; params: w[O,C/g,kh,kw] (, b[O]) */    \
  X(batch_norm, "batchNorm")            /* in: x; params: gamma, beta, running_mean, running_var */ \
  X(relu, "relu")                       /* in: x */                                          \
  X(max_pool, "maxPool")                /* in: x[N,C,H,W] */                                 \
  X(avg_pool, "avgPool")                /* in: x[N,C,H,W] */                                 \
  X(global_avg_pool, "globalAvgPool")   /* in: x[N,C,H,W] -> [N,C] */                         \
  X(linear, "linear")                   /* in: x[N,F]; params: w[O,F], b[O] */               \
  X(add, "add")                         /* in: a, b (same shape) */                          \
  X(softmax_cross_entropy, "softmaxCrossEntropy") /* in: logits[N,K], labels i32[N] (, targets[N,K]) -> loss[] */

enum class OpKind {
#define X(e, s) e,
  CRUNET_OPS(X)
#undef X
};

inline const char* op_name(OpKind k) {
  switch (k) {
#define X(e, s) \
  case OpKind::e: return s;
    CRUNET_OPS(X)
#undef X
  }
  return "?";
}

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
  std::vector<Shape> params;  // parameter slots, in the order listed per op above
  ConvAttrs conv;
  PoolAttrs pool;
  BatchNormAttrs bn;
  CrossEntropyAttrs xent;
};

}  // namespace crunet
