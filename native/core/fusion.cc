#include "fusion.h"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

namespace crunet {

GraphDesc fuse_batch_norm_relu(const GraphDesc& g) {
  std::unordered_map<std::string, int> consumers;
  for (const auto& n : g.nodes)
    for (const auto& in : n.inputs) consumers[in]++;
  auto is_output = [&](const std::string& v) {
    return v == g.loss || std::find(g.outputs.begin(), g.outputs.end(), v) != g.outputs.end();
  };
  std::unordered_set<std::string> graph_inputs;
  for (const auto& in : g.inputs) graph_inputs.insert(in.name);
  std::unordered_map<std::string, size_t> bn_index;
  std::unordered_map<std::string, std::string> rename;  // relu name -> the batch norm that absorbs it
  GraphDesc out = g;
  out.nodes.clear();
  for (const auto& n : g.nodes) {
    // A batch norm reading a graph input rarely needs its input gradient, and the fused backward always
    // computes one: leave those unfused (their backward then computes only dgamma and dbeta).
    if (n.op == "batchNorm" && !n.attrs.count("fuseRelu") && !n.inputs.empty() &&
        !graph_inputs.count(n.inputs[0]))
      bn_index[n.name] = out.nodes.size();
    if (n.op == "relu" && n.inputs.size() == 1 && n.params.empty() && n.attrs.empty()) {
      auto it = bn_index.find(n.inputs[0]);
      if (it != bn_index.end() && consumers[n.inputs[0]] == 1 && !is_output(n.inputs[0])) {
        out.nodes[it->second].attrs["fuseRelu"] = {1};
        rename[n.name] = n.inputs[0];
        continue;
      }
    }
    NodeDesc copy = n;
    for (auto& in : copy.inputs)
      if (auto r = rename.find(in); r != rename.end()) in = r->second;
    out.nodes.push_back(std::move(copy));
  }
  for (auto& o : out.outputs)
    if (auto r = rename.find(o); r != rename.end()) o = r->second;
  return out;
}

}  // namespace crunet
