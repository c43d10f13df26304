// See executor.h. The schedule is a time axis shared by the planner and the runner:
//   0: upload the feeds   1..n: forward of node i at F(i) = 1 + i   n+1: the seed
//   n+2..2n+1: backward of node i at B(i) = 2n + 1 - i                2n+2: outputs read back, SGD
#include "executor.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <new>
#include <random>

#include "error.h"
#include "fusion.h"

namespace crunet {

// One backward schedule towards a target value: for the loss (step) or for outputs[0] (gradients).
struct Executor::Pass {
  struct Accumulate {
    float* dst;
    const float* src;
    size_t n;
  };
  struct Call {
    int node;
    KernelIO io;
    std::vector<Accumulate> then;  // gradient sums to do right after the call
  };
  int target = -1;
  bool seed_in_loss_kernel = false;  // the loss kernel seeds itself with 1
  std::vector<Call> calls;           // in backward order
  std::vector<std::pair<float*, size_t>> zero_first;  // wanted gradients nothing writes: (buffer, bytes)
  std::vector<char> param_reached;   // per parameter: has a gradient in this pass
};

namespace {

bool differentiable_slot(const NodeInfo& n, int slot) {
  return !(n.spec.op == OpKind::softmax_cross_entropy && slot >= 1);  // labels, soft targets
}

// Slot k of a node's parameters holds a trainable tensor (batch norm's running statistics do not).
bool trainable_slot(const TypedGraph& g, const NodeInfo& n, int k) { return g.params[n.params[k]].trainable; }

// True when no element is NaN or infinite: a branch-free scan over the exponent bits, which the
// compiler vectorises (an image batch is millions of floats, checked every step).
bool all_finite(const float* x, int64_t n) {
  const uint32_t* bits = reinterpret_cast<const uint32_t*>(x);
  uint32_t bad = 0;
#pragma omp parallel for simd reduction(| : bad)
  for (int64_t i = 0; i < n; i++) bad |= static_cast<uint32_t>((bits[i] & 0x7f800000u) == 0x7f800000u);
  return bad == 0;
}

std::atomic<bool> g_cancelled{false};

void check_not_cancelled() {
  if (g_cancelled.load(std::memory_order_relaxed)) fail("cancelled: the process is exiting");
}

}  // namespace

void cancel_all_work() { g_cancelled.store(true); }

Executor::Executor(Backend& backend, const GraphDesc& graph, const ExecutorOptions& opts)
    : be_(backend), opts_(opts), g_(infer_shapes(opts.fuse && backend.fuses_batch_norm_relu() ? fuse_batch_norm_relu(graph) : graph, opts.batch)) {
  try {
    build_kernels();
    init_params();
    plan_and_bind();
  } catch (...) {
    // Free what was allocated before rethrowing. Not this->~Executor(): the members would then be
    // destroyed twice (once there, once as the constructor unwinds), a double free.
    release();
    throw;
  }
}

Executor::~Executor() { release(); }

// Out of memory at compile time names what was being allocated, its size and the batch, and what helps.
void* Executor::alloc_or_explain(size_t bytes, const char* what, bool per_batch) {
  try {
    return be_.alloc(bytes);
  } catch (const Error& e) {
    char size[32];
    std::snprintf(size, sizeof size, "%.3g GiB", static_cast<double>(bytes) / (1u << 30));
    fail("cannot allocate ", what, " (", size, per_batch ? " at batch " : ")", per_batch ? std::to_string(opts_.batch) + ")" : "",
         " on ", be_.name(), ": ", e.what(),
         per_batch ? "; activation memory grows with the batch: try a smaller batch size" : "");
  }
}

void Executor::release() {
  kernels_.clear();
  for (auto* v : {&param_data_, &param_grad_, &param_mom_})
    for (auto*& p : *v) {
      if (p) be_.release(p);
      p = nullptr;
    }
  if (arena_) be_.release(arena_);
  if (scratch_) be_.release(scratch_);
  if (running_backup_) be_.release(running_backup_);
  arena_ = scratch_ = running_backup_ = nullptr;
}

void check_tensor_elements(const TypedGraph& g, int64_t limit, const std::string& where) {
  for (auto& n : g.nodes) {
    auto check = [&](const Shape& s, const char* what) {
      if (numel(s) > limit)
        fail("node ", n.spec.name, " (", op_name(n.spec.op), "): ", what, " ", shape_str(s), " has ", numel(s),
             " elements, over the ", limit, " one tensor may have on ", where, "; use a smaller batch size");
    };
    for (const Shape& s : n.spec.in) check(s, "input");
    check(n.spec.out, "output");
    for (const Shape& s : n.spec.params) check(s, "parameter");
  }
}

void Executor::build_kernels() {
  check_tensor_elements(g_, be_.max_tensor_elements(), be_.name());
  for (auto& n : g_.nodes) {
    check_not_cancelled();  // exiting need not wait for a whole compile (cuDNN searches can take seconds)
    try {
      kernels_.push_back(be_.make_kernel(n.spec));
    } catch (const Error&) {
      throw;
    } catch (const std::bad_alloc&) {
      fail("node ", n.spec.name, " (", op_name(n.spec.op), "): out of host memory while building its ", be_.name(), " kernel for input ",
           shape_str(n.spec.in.at(0)), " and output ", shape_str(n.spec.out));
    } catch (const std::exception& e) {
      fail("node ", n.spec.name, " (", op_name(n.spec.op), "): ", be_.name(), " backend could not build it: ", e.what());
    }
    prof_.push_back({n.spec.name, op_name(n.spec.op), kernels_.back()->impl_info(), kernels_.back()->report_json()});
    scratch_bytes_ = std::max(scratch_bytes_, kernels_.back()->scratch_bytes());
  }
}

void Executor::init_params() {
  for (size_t i = 0; i < g_.params.size(); i++) {
    const auto& p = g_.params[i];
    size_t n = static_cast<size_t>(numel(p.shape));
    // nothrow, so that the failure is a message naming the parameter and its bytes (and so that it also
    // fails cleanly under AddressSanitizer, whose operator new aborts instead of throwing bad_alloc).
    std::unique_ptr<float[]> owned(new (std::nothrow) float[n]);
    if (!owned) fail("parameter ", p.name, " ", shape_str(p.shape), ": out of host memory: cannot allocate ", n * 4, " bytes to initialise it");
    float* const host = owned.get();
    // One generator per parameter, seeded from (seed, index): a parameter's values do not depend on
    // which other parameters exist.
    std::seed_seq seq{static_cast<uint32_t>(opts_.seed), static_cast<uint32_t>(opts_.seed >> 32), static_cast<uint32_t>(i)};
    std::mt19937_64 rng(seq);
    switch (p.init.dist) {
      case InitDesc::normal: {
        std::normal_distribution<double> d(p.init.a, p.init.b);
        for (size_t k = 0; k < n; k++) host[k] = static_cast<float>(d(rng));
        break;
      }
      case InitDesc::uniform: {
        std::uniform_real_distribution<double> d(p.init.a, p.init.b);
        for (size_t k = 0; k < n; k++) host[k] = static_cast<float>(d(rng));
        break;
      }
      case InitDesc::constant:
        std::fill(host, host + n, static_cast<float>(p.init.a));
        break;
    }
    param_data_.push_back(static_cast<float*>(alloc_or_explain(n * 4, "the parameters", false)));
    be_.upload(param_data_.back(), host, n * 4);
    param_grad_.push_back(p.trainable ? static_cast<float*>(alloc_or_explain(n * 4, "the parameter gradients", false)) : nullptr);
    param_mom_.push_back(p.trainable ? static_cast<float*>(alloc_or_explain(n * 4, "the momentum buffers", false)) : nullptr);
    param_bytes_ += n * 4 * (p.trainable ? 3 : 1);
  }
  size_t backup_bytes = 0;
  for (size_t i = 0; i < g_.params.size(); i++)
    if (!g_.params[i].trainable) {
      running_slots_.push_back({static_cast<int>(i), backup_bytes});
      backup_bytes += static_cast<size_t>(numel(g_.params[i].shape)) * 4;
    }
  if (backup_bytes) {
    running_backup_ = alloc_or_explain(backup_bytes, "the batch-norm statistics snapshot", false);
    param_bytes_ += backup_bytes;  // counted with the parameters: it is their shadow
  }
}

void Executor::plan_and_bind() {
  const int n = static_cast<int>(g_.nodes.size());
  const int kSeed = n + 1, kEnd = 2 * n + 2;
  auto F = [](int i) { return 1 + i; };
  auto B = [n](int i) { return 2 * n + 1 - i; };
  const size_t nv = g_.values.size();

  // Which values carry gradients at all.
  std::vector<char> needs_grad(nv, 0);
  for (size_t v = 0; v < nv; v++) {
    const auto& val = g_.values[v];
    if (val.producer < 0) needs_grad[v] = opts_.input_grads && val.dtype == DType::f32;
  }
  for (const auto& node : g_.nodes) {
    bool any = false;
    for (int u : node.inputs) any |= needs_grad[u] != 0;
    for (size_t k = 0; k < node.params.size(); k++) any |= trainable_slot(g_, node, static_cast<int>(k));
    needs_grad[node.output] = any;
  }

  std::vector<BufferRequest> req;
  auto request = [&](size_t bytes, int first, int last) {
    req.push_back({bytes, first, last});
    return static_cast<int>(req.size()) - 1;
  };

  // Pass skeletons: which nodes run backward, and who contributes to which gradient.
  struct Contribution {
    int node, slot;  // slot >= 0: input slot; slot < 0: parameter slot -(k+1)
  };
  struct PassPlan {
    std::vector<char> runs;                                   // per node
    std::map<int, std::vector<Contribution>> value_contribs;  // value -> contributors, backward order
    std::map<int, std::vector<Contribution>> param_contribs;  // param -> contributors, backward order
  };
  auto make_pass_plan = [&](int target) {
    PassPlan pp;
    pp.runs.assign(n, 0);
    std::vector<char> reach(nv, 0);
    reach[target] = 1;
    for (int c = n - 1; c >= 0; c--) {
      const auto& node = g_.nodes[c];
      if (!reach[node.output] || !needs_grad[node.output]) continue;
      pp.runs[c] = 1;
      for (size_t j = 0; j < node.inputs.size(); j++)
        if (differentiable_slot(node, static_cast<int>(j))) reach[node.inputs[j]] = 1;
    }
    for (int c = n - 1; c >= 0; c--) {
      if (!pp.runs[c]) continue;
      const auto& node = g_.nodes[c];
      for (size_t j = 0; j < node.inputs.size(); j++)
        if (differentiable_slot(node, static_cast<int>(j)) && needs_grad[node.inputs[j]])
          pp.value_contribs[node.inputs[j]].push_back({c, static_cast<int>(j)});
      for (size_t k = 0; k < node.params.size(); k++)
        if (trainable_slot(g_, node, static_cast<int>(k)))
          pp.param_contribs[node.params[k]].push_back({c, -static_cast<int>(k) - 1});
    }
    return pp;
  };

  std::vector<int> targets;
  if (g_.loss_node >= 0) targets.push_back(g_.nodes[g_.loss_node].output);
  if (!g_.outputs.empty()) targets.push_back(g_.outputs[0]);
  std::vector<PassPlan> plans;
  for (int t : targets) plans.push_back(make_pass_plan(t));
  auto runs_anywhere = [&](int c) {
    for (auto& pp : plans)
      if (pp.runs[c]) return true;
    return false;
  };

  // Value data.
  std::vector<int> data_buf(nv), grad_buf(nv, -1);
  for (size_t v = 0; v < nv; v++) {
    const auto& val = g_.values[v];
    int first = val.producer < 0 ? 0 : F(val.producer), last = first;
    for (auto [c, j] : val.uses) {
      last = std::max(last, F(c));
      if (runs_anywhere(c) && kernels_[c]->backward_reads_input(j)) last = std::max(last, B(c));
    }
    if (val.producer >= 0 && runs_anywhere(val.producer) && kernels_[val.producer]->backward_reads_output())
      last = std::max(last, B(val.producer));
    if (std::find(g_.outputs.begin(), g_.outputs.end(), static_cast<int>(v)) != g_.outputs.end()) last = kEnd;
    data_buf[v] = request(static_cast<size_t>(numel(val.shape)) * dtype_size(val.dtype), first, last);
  }
  // Saved tensors, forward to backward.
  std::vector<int> saved_buf(n, -1);
  for (int c = 0; c < n; c++)
    if (size_t b = kernels_[c]->saved_bytes()) saved_buf[c] = request(b, F(c), B(c));
  // Gradients: from the first contributor (or the seed) to the producer's backward (or the end).
  for (size_t v = 0; v < nv; v++) {
    int first = kEnd + 1, last = -1;
    for (size_t p = 0; p < plans.size(); p++) {
      bool seeded = static_cast<int>(v) == targets[p];
      auto it = plans[p].value_contribs.find(static_cast<int>(v));
      bool contributed = it != plans[p].value_contribs.end();
      if (!seeded && !contributed) continue;
      first = std::min(first, seeded ? kSeed : B(it->second.front().node));
      last = std::max(last, g_.values[v].producer < 0 ? kEnd : B(g_.values[v].producer));
    }
    if (last >= 0) grad_buf[v] = request(static_cast<size_t>(numel(g_.values[v].shape)) * 4, first, last);
  }
  // Temporaries for the second and later contributions to one gradient, keyed by (node, slot).
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
        pass_temps[p][{cs[k].node, cs[k].slot}] = temp_for(cs[k], static_cast<size_t>(numel(g_.values[v].shape)) * 4);
    }
    for (auto& [pid, cs] : plans[p].param_contribs)
      for (size_t k = 1; k < cs.size(); k++)
        pass_temps[p][{cs[k].node, cs[k].slot}] = temp_for(cs[k], static_cast<size_t>(numel(g_.params[pid].shape)) * 4);
  }

  plan_ = plan_memory(req, opts_.reuse_memory, be_.arena_alignment());
  arena_ = alloc_or_explain(std::max<size_t>(plan_.arena_bytes, 64), "the activation arena", true);
  if (scratch_bytes_) scratch_ = alloc_or_explain(scratch_bytes_, "the kernels' scratch space", true);
  auto at = [&](int buf) { return buf < 0 ? nullptr : static_cast<char*>(arena_) + plan_.offsets[buf]; };

  value_data_.resize(nv);
  value_grad_.resize(nv);
  for (size_t v = 0; v < nv; v++) {
    value_data_[v] = at(data_buf[v]);
    value_grad_[v] = reinterpret_cast<float*>(at(grad_buf[v]));
  }
  for (int c = 0; c < n; c++) {
    const auto& node = g_.nodes[c];
    KernelIO io;
    for (int u : node.inputs) io.in.push_back(value_data_[u]);
    io.out = value_data_[node.output];
    for (int pid : node.params) io.params.push_back(param_data_[pid]);
    io.saved = at(saved_buf[c]);
    io.scratch = scratch_;
    if (c == g_.loss_node) io.stats = &last_stats_;
    fwd_io_.push_back(io);
  }

  // Bind the passes.
  auto bind = [&](size_t p) {
    auto pass = std::make_unique<Pass>();
    pass->target = targets[p];
    pass->seed_in_loss_kernel = g_.loss_node >= 0 && targets[p] == g_.nodes[g_.loss_node].output && p == 0;
    pass->param_reached.assign(g_.params.size(), 0);
    std::map<int, Pass::Call> calls;
    for (int c = n - 1; c >= 0; c--) {
      if (!plans[p].runs[c]) continue;
      Pass::Call call{c, fwd_io_[c], {}};
      const auto& node = g_.nodes[c];
      call.io.out_grad = (c == g_.loss_node && pass->seed_in_loss_kernel) ? nullptr : value_grad_[node.output];
      call.io.in_grad.assign(node.inputs.size(), nullptr);
      call.io.param_grad.assign(node.params.size(), nullptr);
      calls.emplace(c, std::move(call));
    }
    auto route = [&](const Contribution& con, float* direct, size_t count) {
      auto& call = calls.at(con.node);
      auto it = pass_temps[p].find({con.node, con.slot});
      float* dst = direct;
      if (it != pass_temps[p].end()) {
        dst = reinterpret_cast<float*>(at(it->second));
        call.then.push_back({direct, dst, count});
      }
      if (con.slot >= 0) call.io.in_grad[con.slot] = dst;
      else call.io.param_grad[-con.slot - 1] = dst;
    };
    for (auto& [v, cs] : plans[p].value_contribs)
      for (auto& con : cs) route(con, value_grad_[v], static_cast<size_t>(numel(g_.values[v].shape)));
    for (auto& [pid, cs] : plans[p].param_contribs) {
      pass->param_reached[pid] = 1;
      for (auto& con : cs) route(con, param_grad_[pid], static_cast<size_t>(numel(g_.params[pid].shape)));
    }
    for (size_t v = 0; v < nv; v++)  // wanted input gradients that no node writes
      if (g_.values[v].producer < 0 && value_grad_[v] && !plans[p].value_contribs.count(static_cast<int>(v)) &&
          static_cast<int>(v) != targets[p])
        pass->zero_first.push_back({value_grad_[v], static_cast<size_t>(numel(g_.values[v].shape)) * 4});
    for (auto it = calls.rbegin(); it != calls.rend(); ++it) pass->calls.push_back(std::move(it->second));
    return pass;
  };
  if (g_.loss_node >= 0) loss_pass_ = bind(0);
  if (!g_.outputs.empty()) output_pass_ = bind(targets.size() - 1);
}

template <typename F>
void Executor::timed(int node, bool fwd, F&& f) {
  if (!opts_.profile) return f();
  be_.synchronize();  // device backends queue work: time the kernel's execution, not its launch
  auto t0 = std::chrono::steady_clock::now();
  f();
  be_.synchronize();
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  (fwd ? prof_[node].forward_ms : prof_[node].backward_ms) += ms;
  if (fwd) prof_[node].calls++;
}

void Executor::reset_profile() {
  for (auto& p : prof_) p.forward_ms = p.backward_ms = 0, p.calls = 0;
}

void Executor::upload_feeds(const Feeds& feeds) {
  // Every input is checked before any is uploaded and before anything runs: a bad label found by the
  // loss kernel would come after batch norm had already moved its running statistics.
  for (const auto& node : g_.nodes) {
    if (node.spec.op != OpKind::softmax_cross_entropy) continue;
    const ValueInfo& lv = g_.values[node.inputs[1]];
    if (lv.producer >= 0) continue;
    const auto* labels = static_cast<const int32_t*>(feeds.at(lv.input_index));
    const int64_t classes = node.spec.in[0][1], count = numel(lv.shape);
    for (int64_t i = 0; i < count; i++)
      if (labels[i] < 0 || labels[i] >= classes)
        fail("input ", lv.name, ": label ", labels[i], " of sample ", i, " is outside [0, ", classes, ") (node ", node.spec.name,
             "); nothing was computed or updated");
  }
  for (auto& v : g_.values) {
    if (v.producer >= 0) continue;
    const void* src = feeds.at(v.input_index);
    void* dst = value_data_[&v - g_.values.data()];
    if (v.dtype == DType::f32) {
      // ReLU maps NaN to 0, so a NaN pixel would not reach the loss but would poison batch-norm statistics.
      const float* x = static_cast<const float*>(src);
      const int64_t count = numel(v.shape);
      if (!all_finite(x, count))
        for (int64_t i = 0; i < count; i++)
          if (!std::isfinite(x[i]))
            fail("input ", v.name, ": element ", i, " (sample ", i / (count / v.shape[0]), ") is ",
                 std::isnan(x[i]) ? "NaN" : "infinite", "; nothing was computed or updated");
      be_.upload_activation(dst, x, v.shape);
    }
    else be_.upload(dst, src, static_cast<size_t>(numel(v.shape)) * dtype_size(v.dtype));
  }
}

void Executor::run_forward(bool training) {
  for (size_t i = 0; i < kernels_.size(); i++) {
    check_not_cancelled();
    fwd_io_[i].training = training;
    timed(static_cast<int>(i), true, [&] { kernels_[i]->forward(fwd_io_[i]); });
  }
}

void Executor::run_backward(const Pass& pass) {
  for (auto [z, bytes] : pass.zero_first) be_.zero(z, bytes);
  for (const auto& call : pass.calls) {
    check_not_cancelled();
    timed(call.node, false, [&] {
      kernels_[call.node]->backward(call.io);
      for (const auto& a : call.then) be_.accumulate(a.dst, a.src, a.n);
    });
  }
}

StepStats Executor::step(const Feeds& feeds, float lr) {
  if (!loss_pass_) fail("step: the graph has no loss; build it with a softmaxCrossEntropy loss or use gradients()");
  if (!std::isfinite(lr) || lr < 0) fail("step: learning rate must be a finite number >= 0, got ", lr);
  upload_feeds(feeds);
  // Until the update begins only batch-norm running statistics change (forward) besides gradients, so
  // putting them back undoes a step that fails before it: a non-finite loss, a cancelled or failed kernel.
  save_running_stats();
  StepStats stats;
  try {
    run_forward(true);
    stats = last_stats_;
    if (!std::isfinite(stats.loss))
      fail("step: the loss is ", std::isnan(stats.loss) ? "NaN" : "infinite",
           "; parameters, optimizer state and batch-norm statistics were left as they were before this step "
           "(check the inputs for NaN/Inf, or lower the learning rate)");
    run_backward(*loss_pass_);
  } catch (...) {
    restore_running_stats();
    throw;
  }
  SgdConfig cfg = opts_.sgd;
  cfg.lr = lr;
  std::vector<SgdSlot> slots;
  std::vector<int> slot_params;  // the parameter of each slot
  for (size_t i = 0; i < g_.params.size(); i++)
    if (loss_pass_->param_reached[i]) {
      slot_params.push_back(static_cast<int>(i));
      slots.push_back({param_data_[i], param_grad_[i], param_mom_[i], static_cast<size_t>(numel(g_.params[i].shape)),
                       g_.params[i].weight_decay});
    }
  const int bad = be_.sgd_step(cfg, slots);
  if (bad >= 0) {
    const auto& p = g_.params[slot_params[bad]];
    fail("step: after the update, parameter ", p.name, " holds NaN or infinite values (the learning rate, ", lr,
         ", is probably too large). This step was applied: parameters, momentum and batch-norm statistics now "
         "hold its results, so restore them from a checkpoint (or re-create the session) before training on");
  }
  return stats;
}

void Executor::save_running_stats() {
  char* backup = static_cast<char*>(running_backup_);
  for (auto [id, off] : running_slots_) be_.copy(backup + off, param_data_[id], static_cast<size_t>(numel(g_.params[id].shape)) * 4);
}
void Executor::restore_running_stats() {
  const char* backup = static_cast<const char*>(running_backup_);
  for (auto [id, off] : running_slots_) be_.copy(param_data_[id], backup + off, static_cast<size_t>(numel(g_.params[id].shape)) * 4);
}

void Executor::forward(const Feeds& feeds, const std::vector<float*>& outs) {
  upload_feeds(feeds);
  run_forward(false);
  for (size_t k = 0; k < g_.outputs.size() && k < outs.size(); k++) {
    const auto& v = g_.values[g_.outputs[k]];
    be_.download_activation(outs[k], value_data_[g_.outputs[k]], v.shape);
  }
}

void Executor::gradients(const Feeds& feeds, const float* seed, const std::vector<float*>& outs,
                         const std::vector<float*>& input_grads, const std::vector<float*>& param_grads) {
  if (!output_pass_) fail("gradients: the graph has no outputs");
  upload_feeds(feeds);
  // A training-mode forward moves batch-norm running statistics; gradients() is backward without an
  // update, so they are put back (also when a kernel fails).
  save_running_stats();
  try {
    run_forward(true);
  } catch (...) {
    restore_running_stats();
    throw;
  }
  restore_running_stats();
  int t = output_pass_->target;
  if (value_grad_[t]) be_.upload_activation(value_grad_[t], seed, g_.values[t].shape);
  run_backward(*output_pass_);
  for (size_t k = 0; k < g_.outputs.size() && k < outs.size(); k++)
    be_.download_activation(outs[k], value_data_[g_.outputs[k]], g_.values[g_.outputs[k]].shape);
  for (auto& v : g_.values) {
    if (v.producer >= 0 || v.input_index >= static_cast<int>(input_grads.size()) || !input_grads[v.input_index]) continue;
    float* dst = input_grads[v.input_index];
    float* g = value_grad_[&v - g_.values.data()];
    if (g) be_.download_activation(dst, g, v.shape);
    else std::memset(dst, 0, static_cast<size_t>(numel(v.shape)) * 4);
  }
  for (size_t i = 0; i < g_.params.size() && i < param_grads.size(); i++) {
    if (!param_grads[i]) continue;
    size_t bytes = static_cast<size_t>(numel(g_.params[i].shape)) * 4;
    if (output_pass_->param_reached[i]) be_.download(param_grads[i], param_grad_[i], bytes);
    else std::memset(param_grads[i], 0, bytes);
  }
}

void Executor::read_param(int id, float* host) const {
  be_.download(host, param_data_.at(id), static_cast<size_t>(numel(g_.params.at(id).shape)) * 4);
}
void Executor::write_param(int id, const float* host) {
  be_.upload(param_data_.at(id), host, static_cast<size_t>(numel(g_.params.at(id).shape)) * 4);
}
void Executor::read_momentum(int id, float* host) const {
  if (!param_mom_.at(id)) fail("parameter ", g_.params[id].name, " is not trainable: it has no optimizer state");
  be_.download(host, param_mom_[id], static_cast<size_t>(numel(g_.params[id].shape)) * 4);
}
void Executor::write_momentum(int id, const float* host) {
  if (!param_mom_.at(id)) fail("parameter ", g_.params[id].name, " is not trainable: it has no optimizer state");
  be_.upload(param_mom_[id], host, static_cast<size_t>(numel(g_.params[id].shape)) * 4);
}

MemoryReport Executor::memory() const {
  return {plan_.arena_bytes,
          plan_.naive_bytes,
          param_bytes_,
          scratch_bytes_,
          plan_.arena_bytes + param_bytes_ + scratch_bytes_,
          static_cast<int>(plan_.offsets.size())};
}

}  // namespace crunet
