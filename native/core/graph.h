// The graph IR as native code receives it (filled from the JS object by native/addon/graph_from_js.cc),
// and the typed graph that shape inference makes of it: values, nodes with NodeSpecs, parameters.
#pragma once
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "ops.h"

namespace crunet {

// ---- IR, as given (shapes per sample) ----
struct InputDesc {
  std::string name;
  Shape shape;
  DType dtype = DType::f32;
};
struct InitDesc {
  enum Dist { normal, uniform, constant } dist = constant;
  double a = 0, b = 0;  // normal: mean, std; uniform: low, high; constant: value
};
struct ParamDesc {
  std::string name;
  Shape shape;
  InitDesc init;
  bool trainable = true, weight_decay = true;
};
struct NodeDesc {
  std::string name, op;
  std::vector<std::string> inputs, params;
  std::map<std::string, std::vector<double>> attrs;  // numbers and booleans as doubles, pairs as two
};
struct GraphDesc {
  std::vector<InputDesc> inputs;
  std::vector<ParamDesc> params;
  std::vector<NodeDesc> nodes;
  std::vector<std::string> outputs;
  std::string loss;  // empty: no loss
};

// ---- typed graph (shapes with the batch in dim 0) ----
struct ValueInfo {
  std::string name;
  Shape shape;
  DType dtype = DType::f32;
  int producer = -1;     // node index, or -1 for a graph input
  int input_index = -1;  // graph input index when producer == -1
  std::vector<std::pair<int, int>> uses;  // (node, input slot), in node order
};
struct NodeInfo {
  NodeSpec spec;
  std::vector<int> inputs;  // value ids
  int output = -1;          // value id
  std::vector<int> params;  // parameter ids
};
struct TypedGraph {
  std::vector<ValueInfo> values;
  std::vector<NodeInfo> nodes;
  std::vector<ParamDesc> params;
  std::vector<int> outputs;  // value ids
  int loss_node = -1;
  std::unordered_map<std::string, int> value_by_name, param_by_name;
};

// Checks the IR and infers every shape; throws crunet::Error naming the node, the expected and the actual.
TypedGraph infer_shapes(const GraphDesc& g, int64_t batch);

}  // namespace crunet
