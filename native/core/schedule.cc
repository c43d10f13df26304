// See schedule.h.
#include "schedule.h"

#include <algorithm>
#include <map>

namespace crunet {
namespace {

// Gradients flow to f32 inputs only (not to the loss's integer labels).
bool differentiable_slot(const NodeInfo& n, size_t slot) { return op_def(n.spec.op).inputs[slot].differentiable(); }

// One contribution to a gradient: node `node` writes it from an input slot (slot >= 0) or from
// parameter slot k (slot = -(k + 1)).
struct Contribution {
  int node, slot;
};

// Which nodes run backward towards one target, and who contributes to which gradient.
struct PassPlan {
  std::vector<char> runs;                                   // per node
  std::map<int, std::vector<Contribution>> value_contribs;  // value -> contributors, backward order
  std::map<int, std::vector<Contribution>> param_contribs;  // param -> contributors, backward order
};

PassPlan plan_pass(const TypedGraph& g, const std::vector<char>& needs_grad, int target) {
  const int n = static_cast<int>(g.nodes.size());
  PassPlan pp;
  pp.runs.assign(n, 0);
  std::vector<char> reach(g.values.size(), 0);
  reach[target] = 1;
  for (int c = n - 1; c >= 0; c--) {
    const auto& node = g.nodes[c];
    if (!reach[node.output] || !needs_grad[node.output]) continue;
    pp.runs[c] = 1;
    for (size_t j = 0; j < node.inputs.size(); j++)
      if (differentiable_slot(node, j)) reach[node.inputs[j]] = 1;
  }
  for (int c = n - 1; c >= 0; c--) {
    if (!pp.runs[c]) continue;
    const auto& node = g.nodes[c];
    for (size_t j = 0; j < node.inputs.size(); j++)
      if (differentiable_slot(node, j) && needs_grad[node.inputs[j]])
        pp.value_contribs[node.inputs[j]].push_back({c, static_cast<int>(j)});
    for (size_t k = 0; k < node.params.size(); k++)
      if (g.params[node.params[k]].trainable) pp.param_contribs[node.params[k]].push_back({c, -static_cast<int>(k) - 1});
  }
  return pp;
}

size_t f32_bytes(const Shape& s) { return static_cast<size_t>(numel(s)) * 4; }

}  // namespace

Schedule make_schedule(const TypedGraph& g, const std::vector<KernelNeeds>& kernels, bool input_grads) {
  const int n = static_cast<int>(g.nodes.size());
  const int kSeed = n + 1, kEnd = 2 * n + 2;
  auto F = [](int i) { return 1 + i; };
  auto B = [n](int i) { return 2 * n + 1 - i; };
  const size_t nv = g.values.size();
  Schedule s;
  auto request = [&](size_t bytes, int first, int last) {
    s.buffers.push_back({bytes, first, last});
    return static_cast<int>(s.buffers.size()) - 1;
  };

  // Which values carry gradients at all.
  std::vector<char> needs_grad(nv, 0);
  for (size_t v = 0; v < nv; v++)
    if (g.values[v].producer < 0) needs_grad[v] = input_grads && g.values[v].dtype == DType::f32;
  for (const auto& node : g.nodes) {
    bool any = false;
    for (int u : node.inputs) any |= needs_grad[u] != 0;
    for (int pid : node.params) any |= g.params[pid].trainable;
    needs_grad[node.output] = any;
  }

  std::vector<int> targets;
  if (g.loss_node >= 0) targets.push_back(g.nodes[g.loss_node].output);
  if (!g.outputs.empty()) targets.push_back(g.outputs[0]);
  std::vector<PassPlan> plans;
  for (int t : targets) plans.push_back(plan_pass(g, needs_grad, t));
  auto runs_anywhere = [&](int c) {
    for (auto& pp : plans)
      if (pp.runs[c]) return true;
    return false;
  };

  // Value data: from its producer's forward (or the upload) to its last reader, forward or backward.
  s.value_data.resize(nv);
  for (size_t v = 0; v < nv; v++) {
    const auto& val = g.values[v];
    int first = val.producer < 0 ? 0 : F(val.producer), last = first;
    for (auto [c, j] : val.uses) {
      last = std::max(last, F(c));
      if (runs_anywhere(c) && kernels[c].reads_input[j]) last = std::max(last, B(c));
    }
    if (val.producer >= 0 && runs_anywhere(val.producer) && kernels[val.producer].reads_output)
      last = std::max(last, B(val.producer));
    if (std::find(g.outputs.begin(), g.outputs.end(), static_cast<int>(v)) != g.outputs.end()) last = kEnd;
    s.value_data[v] = request(static_cast<size_t>(numel(val.shape)) * dtype_size(val.dtype), first, last);
  }
  // Saved tensors, forward to backward.
  s.saved.assign(n, -1);
  for (int c = 0; c < n; c++)
    if (size_t b = kernels[c].saved_bytes) s.saved[c] = request(b, F(c), B(c));
  // Gradients: from the first contributor (or the seed) to the producer's backward (or the end).
  s.value_grad.assign(nv, -1);
  for (size_t v = 0; v < nv; v++) {
    int first = kEnd + 1, last = -1;
    for (size_t p = 0; p < plans.size(); p++) {
      bool seeded = static_cast<int>(v) == targets[p];
      auto it = plans[p].value_contribs.find(static_cast<int>(v));
      bool contributed = it != plans[p].value_contribs.end();
      if (!seeded && !contributed) continue;
      first = std::min(first, seeded ? kSeed : B(it->second.front().node));
      last = std::max(last, g.values[v].producer < 0 ? kEnd : B(g.values[v].producer));
    }
    if (last >= 0) s.value_grad[v] = request(f32_bytes(g.values[v].shape), first, last);
  }
  // Temporaries for the second and later contributions to one gradient, keyed by (node, slot): one
  // buffer per contribution, shared by the passes, live during that node's backward only.
  std::map<std::pair<int, int>, int> temp_buf;
  auto temp_for = [&](const Contribution& c, size_t bytes) {
    auto key = std::make_pair(c.node, c.slot);
    auto it = temp_buf.find(key);
    if (it == temp_buf.end()) it = temp_buf.emplace(key, request(bytes, B(c.node), B(c.node))).first;
    return it->second;
  };
  std::vector<std::map<std::pair<int, int>, int>> pass_temps(plans.size());
  for (size_t p = 0; p < plans.size(); p++) {
    for (auto& [v, cs] : plans[p].value_contribs) {
      bool seeded = v == targets[p];
      for (size_t k = seeded ? 0 : 1; k < cs.size(); k++)
        pass_temps[p][{cs[k].node, cs[k].slot}] = temp_for(cs[k], f32_bytes(g.values[v].shape));
    }
    for (auto& [pid, cs] : plans[p].param_contribs)
      for (size_t k = 1; k < cs.size(); k++)
        pass_temps[p][{cs[k].node, cs[k].slot}] = temp_for(cs[k], f32_bytes(g.params[pid].shape));
  }

  // The passes: each contribution goes to its gradient directly, or to its temporary and is added in.
  for (size_t p = 0; p < plans.size(); p++) {
    BackwardPass pass;
    pass.target = targets[p];
    pass.seed_in_loss_kernel = p == 0 && g.loss_node >= 0;  // the loss pass comes first when there is one
    pass.param_reached.assign(g.params.size(), 0);
    std::map<int, BackwardCall> calls;
    for (int c = 0; c < n; c++) {
      if (!plans[p].runs[c]) continue;
      const auto& node = g.nodes[c];
      BackwardCall call;
      call.node = c;
      call.out_grad = c == g.loss_node && pass.seed_in_loss_kernel ? -1 : s.value_grad[node.output];
      call.in_grad.resize(node.inputs.size());
      call.param_grad.resize(node.params.size());
      calls.emplace(c, std::move(call));
    }
    auto route = [&](const Contribution& con, GradDest direct, size_t count) {
      auto& call = calls.at(con.node);
      GradDest dst = direct;
      auto it = pass_temps[p].find({con.node, con.slot});
      if (it != pass_temps[p].end()) {
        dst = GradDest{it->second, -1};
        call.then.push_back({direct, it->second, count});
      }
      if (con.slot >= 0) call.in_grad[con.slot] = dst;
      else call.param_grad[-con.slot - 1] = dst;
    };
    for (auto& [v, cs] : plans[p].value_contribs)
      for (auto& con : cs) route(con, GradDest{s.value_grad[v], -1}, static_cast<size_t>(numel(g.values[v].shape)));
    for (auto& [pid, cs] : plans[p].param_contribs) {
      pass.param_reached[pid] = 1;
      for (auto& con : cs) route(con, GradDest{-1, pid}, static_cast<size_t>(numel(g.params[pid].shape)));
    }
    for (size_t v = 0; v < nv; v++)  // wanted input gradients that no node writes
      if (g.values[v].producer < 0 && s.value_grad[v] >= 0 && !plans[p].value_contribs.count(static_cast<int>(v)) &&
          static_cast<int>(v) != targets[p])
        pass.zero_first.push_back(static_cast<int>(v));
    for (auto it = calls.rbegin(); it != calls.rend(); ++it) pass.calls.push_back(std::move(it->second));
    s.passes.push_back(std::move(pass));
  }
  if (g.loss_node >= 0) s.loss_pass = 0;
  if (!g.outputs.empty()) s.output_pass = static_cast<int>(s.passes.size()) - 1;
  return s;
}

}  // namespace crunet
