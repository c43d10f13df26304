// See executor.h. The order of calls and every buffer's lifetime come from the schedule (schedule.h);
// this file builds the kernels, binds the schedule to memory and runs it.
#include "executor.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <new>
#include <random>

#include "error.h"
#include "fusion.h"
#include "schedule.h"

namespace crunet {

// A BackwardPass (schedule.h) bound to memory: every kernel call's arguments, prebuilt.
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
  std::vector<Call> calls;                            // in backward order
  std::vector<std::pair<float*, size_t>> zero_first;  // wanted gradients nothing writes: (buffer, bytes)
  std::vector<char> param_reached;                    // per parameter: has a gradient in this pass
  std::vector<int> param_last_call;                   // per parameter: the last call that writes its gradient, or -1
};

namespace {

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
bool work_cancelled() { return g_cancelled.load(std::memory_order_relaxed); }

Executor::Executor(Backend& backend, const GraphDesc& graph, const ExecutorOptions& opts)
    : be_(backend), opts_(opts), g_(infer_shapes(opts.fuse && backend.fuses_batch_norm_relu() ? fuse_batch_norm_relu(graph) : graph, opts.batch)),
      scaler_(opts.loss_scale) {
  check_precision();
  if (scaler_.enabled()) {
    const std::string why = be_.loss_scaling_unsupported();
    if (!why.empty()) fail("compile: lossScale on device '", be_.name(), "': ", why, "; compile without lossScale");
  }
  try {
    build_kernels();
    init_params();
    bind(make_schedule(g_, kernel_needs(), opts_.input_grads));
    if (scaler_.enabled() && loss_pass_) {
      // The loss kernel reads its seed from backend memory (a device backend: device memory).
      seed_ = static_cast<float*>(alloc_or_explain(sizeof(float), "the loss scale", false));
      const float scale = scaler_.scale();
      be_.upload(seed_, &scale, sizeof scale);
      for (auto& call : loss_pass_->calls)
        if (call.node == g_.loss_node) call.io.out_grad = seed_;
    }
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
  for (auto* v : {&param_data_, &param_grad_, &param_state_[0], &param_state_[1], &param_acc_, &param_ema_})
    for (auto*& p : *v) {
      if (p) be_.release(p);
      p = nullptr;
    }
  if (arena_) be_.release(arena_);
  if (scratch_) be_.release(scratch_);
  if (running_backup_) be_.release(running_backup_);
  if (seed_) be_.release(seed_);
  arena_ = scratch_ = running_backup_ = nullptr;
  seed_ = nullptr;
}

namespace {
// Whether the executor can run a graph in precision p (it has no low-precision lowering yet).
bool executor_runs(Precision p) { return p == Precision::fp32; }
}  // namespace

// A precision the device cannot compute in is an error naming the device, the precision, why, and what
// the device supports: never a silent fp32 (docs/ARCHITECTURE.md, "Precision").
void Executor::check_precision() const {
  const Precision p = opts_.precision;
  const std::string why = be_.precision_unsupported(p);
  if (!why.empty()) {
    // What a session on this device can be compiled in: both checks pass (the device's kernels exist and
    // the executor lowers to them), so fp32 alone until the lowering exists.
    std::string supported;
    for (Precision q : kAllPrecisions)
      if (be_.precision_unsupported(q).empty() && executor_runs(q)) supported += std::string(supported.empty() ? "" : ", ") + precision_name(q);
    fail("compile: device '", be_.name(), "' cannot compute in ", precision_name(p), ": ", why, "; it supports ", supported);
  }
  // The device could, but the executor does not yet lower a graph to low-precision kernels and casts.
  if (!executor_runs(p))
    fail("compile: precision ", precision_name(p), " on device '", be_.name(), "': crunet cannot run a graph in ",
         precision_name(p), " yet; use fp32");
}

void check_tensor_elements(const TypedGraph& g, int64_t limit, const std::string& where) {
  for (auto& n : g.nodes) {
    auto check = [&](const Shape& s, const char* what) {
      if (numel(s) > limit)
        fail(node_label(n.spec), ": ", what, " ", shape_str(s), " has ", numel(s),
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
      fail(node_label(n.spec), ": out of host memory while building its ", be_.name(), " kernel for input ",
           shape_str(n.spec.in.at(0)), " and output ", shape_str(n.spec.out));
    } catch (const std::exception& e) {
      fail(node_label(n.spec), ": ", be_.name(), " backend could not build it: ", e.what());
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
    const int buffers = state_buffers(opts_.optimizer.rule);
    for (int k = 0; k < kMaxStateBuffers; k++)
      param_state_[k].push_back(p.trainable && k < buffers ? static_cast<float*>(alloc_or_explain(n * 4, "the optimizer's state buffers", false)) : nullptr);
    // timm's ModelEmaV2 starts as a copy of the model.
    param_ema_.push_back(opts_.ema ? static_cast<float*>(alloc_or_explain(n * 4, "the moving average of the parameters", false)) : nullptr);
    if (opts_.ema) be_.upload(param_ema_.back(), host, n * 4);
    param_bytes_ += n * 4 * (1 + (p.trainable ? 1 + buffers : 0) + (opts_.ema ? 1 : 0));
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

std::vector<KernelNeeds> Executor::kernel_needs() const {
  std::vector<KernelNeeds> needs(kernels_.size());
  for (size_t c = 0; c < kernels_.size(); c++) {
    needs[c].saved_bytes = kernels_[c]->saved_bytes();
    for (size_t j = 0; j < g_.nodes[c].inputs.size(); j++) needs[c].reads_input.push_back(kernels_[c]->backward_reads_input(static_cast<int>(j)));
    needs[c].reads_output = kernels_[c]->backward_reads_output();
  }
  return needs;
}

void Executor::bind(const Schedule& s) {
  plan_ = plan_memory(s.buffers, opts_.reuse_memory, be_.arena_alignment());
  arena_ = alloc_or_explain(std::max<size_t>(plan_.arena_bytes, 64), "the activation arena", true);
  if (scratch_bytes_) scratch_ = alloc_or_explain(scratch_bytes_, "the kernels' scratch space", true);
  auto at = [&](int buf) { return buf < 0 ? nullptr : static_cast<char*>(arena_) + plan_.offsets[buf]; };
  auto grad_at = [&](const GradDest& d) { return d.param >= 0 ? param_grad_[d.param] : reinterpret_cast<float*>(at(d.buffer)); };

  const size_t nv = g_.values.size();
  value_data_.resize(nv);
  value_grad_.resize(nv);
  for (size_t v = 0; v < nv; v++) {
    value_data_[v] = at(s.value_data[v]);
    value_grad_[v] = reinterpret_cast<float*>(at(s.value_grad[v]));
  }
  for (size_t c = 0; c < g_.nodes.size(); c++) {
    const auto& node = g_.nodes[c];
    KernelIO io;
    for (int u : node.inputs) io.in.push_back(value_data_[u]);
    io.out = value_data_[node.output];
    for (int pid : node.params) io.params.push_back(param_data_[pid]);
    io.saved = at(s.saved[c]);
    io.scratch = scratch_;
    if (static_cast<int>(c) == g_.loss_node) io.stats = &last_stats_;
    fwd_io_.push_back(io);
  }

  auto bind_pass = [&](const BackwardPass& bp) {
    auto pass = std::make_unique<Pass>();
    pass->target = bp.target;
    pass->param_reached = bp.param_reached;
    pass->param_last_call.assign(g_.params.size(), -1);
    for (size_t c = 0; c < bp.calls.size(); c++) {
      for (const auto& d : bp.calls[c].param_grad)
        if (d.param >= 0) pass->param_last_call[d.param] = static_cast<int>(c);
      for (const auto& a : bp.calls[c].then)
        if (a.into.param >= 0) pass->param_last_call[a.into.param] = static_cast<int>(c);
    }
    for (int v : bp.zero_first) pass->zero_first.push_back({value_grad_[v], static_cast<size_t>(numel(g_.values[v].shape)) * 4});
    for (const auto& bc : bp.calls) {
      Pass::Call call{bc.node, fwd_io_[bc.node], {}};
      call.io.out_grad = at(bc.out_grad);
      for (const auto& d : bc.in_grad) call.io.in_grad.push_back(grad_at(d));
      for (const auto& d : bc.param_grad) call.io.param_grad.push_back(grad_at(d));
      for (const auto& a : bc.then) call.then.push_back({grad_at(a.into), reinterpret_cast<const float*>(at(a.from)), a.count});
      pass->calls.push_back(std::move(call));
    }
    return pass;
  };
  if (s.loss_pass >= 0) loss_pass_ = bind_pass(s.passes[s.loss_pass]);
  if (s.output_pass >= 0) output_pass_ = bind_pass(s.passes[s.output_pass]);

  // The optimizer's view of the parameters the loss reaches: fixed once the memory is, so built here
  // rather than every step (set_optimizer fills in the groups' settings).
  if (loss_pass_)
    for (size_t i = 0; i < g_.params.size(); i++)
      if (loss_pass_->param_reached[i]) {
        update_params_.push_back(static_cast<int>(i));
        update_slots_.push_back({param_data_[i], param_grad_[i], {param_state_[0][i], param_state_[1][i]},
                                 static_cast<size_t>(numel(g_.params[i].shape)), 0.0f, 1.0f});
      }
  set_optimizer(opts_.optimizer, opts_.param_weight_decay, opts_.param_lr_scale);
  if (opts_.ema) {
    ema_fwd_io_ = fwd_io_;
    for (size_t c = 0; c < g_.nodes.size(); c++)
      for (size_t j = 0; j < g_.nodes[c].params.size(); j++) ema_fwd_io_[c].params[j] = param_ema_[g_.nodes[c].params[j]];
    for (size_t i = 0; i < g_.params.size(); i++) ema_slots_.push_back({param_ema_[i], param_data_[i], static_cast<size_t>(numel(g_.params[i].shape))});
  }
}

void Executor::set_optimizer(const OptimizerConfig& cfg, const std::vector<float>& weight_decay, const std::vector<float>& lr_scale) {
  if (cfg.rule != opts_.optimizer.rule) fail("set_optimizer: the update rule is fixed at compile time (its state buffers were made for it)");
  const size_t np = g_.params.size();
  if ((!weight_decay.empty() && weight_decay.size() != np) || (!lr_scale.empty() && lr_scale.size() != np))
    fail("set_optimizer: expected one weight decay and one learning-rate multiplier per parameter (", np, ")");
  opts_.optimizer = cfg;
  opts_.param_weight_decay = weight_decay;
  opts_.param_lr_scale = lr_scale;
  for (size_t k = 0; k < update_slots_.size(); k++) {
    const int i = update_params_[k];
    update_slots_[k].weight_decay = weight_decay.empty() ? (g_.params[i].weight_decay ? cfg.weight_decay : 0.0f) : weight_decay[i];
    update_slots_[k].lr_scale = lr_scale.empty() ? 1.0f : lr_scale[i];
  }
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
        fail("input ", lv.name, ": label ", labels[i], " of sample ", i, " is outside [0, ", classes, "), the classes of ", node_label(node.spec),
             "; nothing was computed or updated");
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

void Executor::run_forward(bool training, std::vector<KernelIO>& io) {
  for (size_t i = 0; i < kernels_.size(); i++) {
    check_not_cancelled();
    io[i].training = training;
    timed(static_cast<int>(i), true, [&] { kernels_[i]->forward(io[i]); });
  }
}

void Executor::run_backward(const Pass& pass, bool sync) {
  for (auto [z, bytes] : pass.zero_first) be_.zero(z, bytes);
  for (size_t c = 0; c < pass.calls.size(); c++) {
    const auto& call = pass.calls[c];
    check_not_cancelled();
    timed(call.node, false, [&] {
      kernels_[call.node]->backward(call.io);
      for (const auto& a : call.then) be_.accumulate(a.dst, a.src, a.n);
    });
    if (sync)
      for (int slot : sync_after_[c]) sync_->ready(slot);
  }
}

void Executor::set_gradient_sync(std::shared_ptr<GradientSync> sync) {
  if (!loss_pass_) fail("distributed training needs a graph with a loss");
  // The slots in the order backward finishes them, so that the first buckets can leave while the rest
  // of backward runs. Every parameter the optimizer updates has a gradient this pass writes.
  std::vector<int> order = update_params_;
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return loss_pass_->param_last_call[a] < loss_pass_->param_last_call[b]; });
  std::vector<GradientSync::Slot> slots;
  sync_after_.assign(loss_pass_->calls.size(), {});
  for (int p : order) {
    const int last = loss_pass_->param_last_call[p];
    if (last < 0 || static_cast<size_t>(last) >= sync_after_.size())
      fail("distributed training: parameter ", g_.params[p].name, " is updated by the optimizer but no call of backward writes its gradient");
    sync_after_[last].push_back(static_cast<int>(slots.size()));
    slots.push_back({param_grad_[p], static_cast<size_t>(numel(g_.params[p].shape))});
  }
  sync->bind(slots);
  sync_ = std::move(sync);
}

void Executor::synchronize_batch_norm() {
  if (!sync_) fail("synchronized batch norm needs a data-parallel session");
  cross_process_.ctx = this;
  cross_process_.sum = [](void* ctx, double* data, size_t n) {
    auto* self = static_cast<Executor*>(ctx);
    if (self->in_step_) self->sync_->sum_now(data, n);
  };
  auto attach = [&](KernelIO& io, int node) {
    if (g_.nodes[node].spec.op != OpKind::batch_norm) return;
    if (g_.nodes[node].spec.bn.fuse_relu) fail(node_label(g_.nodes[node].spec), ": synchronized batch norm needs the session compiled with fuse: false");
    io.cross_process = &cross_process_;
  };
  for (size_t c = 0; c < fwd_io_.size(); c++) attach(fwd_io_[c], static_cast<int>(c));
  for (Pass* p : {loss_pass_.get(), output_pass_.get()})
    if (p)
      for (auto& call : p->calls) attach(call.io, call.node);
}

StepOutcome Executor::step(const Feeds& feeds, float lr, bool accumulate) {
  if (!loss_pass_) fail("step: the graph has no loss; build it with a softmaxCrossEntropy loss or use gradients()");
  // A data-parallel step that fails on one process only must fail on all (docs/ARCHITECTURE.md, "Several
  // processes"): bad inputs and a non-finite loss are agreed on before anything is sent; any other
  // failure aborts the group, so that no exchange pairs with another step's.
  std::string refused;
  try {
    if (!std::isfinite(lr) || lr < 0) fail("step: learning rate must be a finite number >= 0, got ", lr);
    upload_feeds(feeds);
  } catch (const std::exception& e) {
    if (!sync_) throw;
    refused = e.what();
  }
  if (sync_) sync_->agree(refused);
  // Until the update begins only batch-norm running statistics change (forward) besides gradients, so
  // putting them back undoes a step that fails before it: a non-finite loss, a cancelled or failed kernel.
  save_running_stats();
  StepOutcome stats;
  struct InStep {  // synchronized batch norm exchanges statistics only within step()
    bool& flag;
    explicit InStep(bool& f) : flag(f) { flag = true; }
    ~InStep() { flag = false; }
  } in_step(in_step_);
  bool agreed = false;  // a failure every process knows of: nothing to abort
  try {
    run_forward(true, fwd_io_);
    static_cast<StepStats&>(stats) = last_stats_;
    std::string bad_loss;
    if (!std::isfinite(stats.loss))
      bad_loss = std::string("step: the loss is ") + (std::isnan(stats.loss) ? "NaN" : "infinite") +
                 "; parameters, optimizer state and batch-norm statistics were left as they were before this step "
                 "(check the inputs for NaN/Inf, or lower the learning rate)";
    if (sync_) {
      agreed = true;
      sync_->agree(bad_loss);
      agreed = false;
    } else if (!bad_loss.empty()) {
      throw Error(bad_loss);
    }
    run_backward(*loss_pass_, sync_ != nullptr);
    if (sync_) sync_->wait();  // the averaged gradients, before the update
  } catch (const std::exception& e) {
    if (sync_ && !agreed) sync_->abandon(e.what());
    restore_running_stats();
    throw;
  } catch (...) {
    if (sync_ && !agreed) sync_->abandon("an unknown error");
    restore_running_stats();
    throw;
  }
  // Loss scaling: this micro-batch's gradients are unscaled before anything reads them (accumulation, the
  // norm and clipping, the update); an overflow skips the step as if it had not run, and the scaler backs
  // off (loss_scaler.h).
  if (scaler_.enabled()) {
    stats.loss_scale = scaler_.scale();
    const float inv = scaler_.inverse_scale();
    bool finite = true;
    for (size_t k = 0; k < update_slots_.size(); k++) finite &= be_.unscale(param_grad_[update_params_[k]], update_slots_[k].n, inv);
    scaler_.update(!finite);
    if (scaler_.scale() != stats.loss_scale) {
      const float scale = scaler_.scale();
      be_.upload(seed_, &scale, sizeof scale);
    }
    if (!finite) {
      restore_running_stats();
      stats.skipped = true;
      // A skipped update drops the micro-batches accumulated for it, as PyTorch's zero_grad() after a
      // skipped scaler.step() does, so that nothing accumulated outlives its update (or an epoch).
      if (!accumulate) accumulated_ = 0;
      return stats;
    }
  }
  double norm = 0;
  try {
    if (accumulate) {
      accumulate_gradients();
      return stats;  // grad_norm stays -1: no update
    }
    norm = gradient_norm();
    stats.grad_norm = static_cast<float>(norm);
  } catch (...) {
    restore_running_stats();
    throw;
  }
  apply_update(lr, norm);  // the double norm: one above float's range is finite here, and clipping needs it
  return stats;
}

void Executor::accumulate_gradients() {
  // Resumes where a failed allocation (out of memory) stopped, so the table is whole before it is read.
  for (size_t i = param_acc_.size(); i < g_.params.size(); i++) {
    const bool reached = loss_pass_->param_reached[i];
    param_acc_.push_back(reached ? static_cast<float*>(alloc_or_explain(static_cast<size_t>(numel(g_.params[i].shape)) * 4,
                                                                        "the accumulated gradients", false))
                                 : nullptr);
    if (reached) param_bytes_ += static_cast<size_t>(numel(g_.params[i].shape)) * 4;
  }
  for (size_t k = 0; k < update_slots_.size(); k++) {
    float* acc = param_acc_[update_params_[k]];
    if (accumulated_ == 0) be_.copy(acc, update_slots_[k].grad, update_slots_[k].n * 4);
    else be_.accumulate(acc, update_slots_[k].grad, update_slots_[k].n);
  }
  accumulated_++;
}

// The update phase, after backward (docs/ARCHITECTURE.md, "A training step"). gradient_norm() adds the
// accumulated micro-batches' gradients in and returns the global L2 norm of the mean gradient (PyTorch's
// clip_grad_norm_ over every trainable gradient). Until then nothing but gradients has changed, so a
// non-finite norm fails the step as a non-finite loss does. apply_update() turns averaging and clipping
// into one factor on the gradient, which the update rule applies as it reads it, then runs the rule and
// the moving average.
double Executor::gradient_norm() {
  const int micro = accumulated_ + 1;
  if (accumulated_ > 0)
    for (size_t k = 0; k < update_slots_.size(); k++) be_.accumulate(param_grad_[update_params_[k]], param_acc_[update_params_[k]], update_slots_[k].n);
  const double norm = std::sqrt(be_.grad_sum_squares(update_slots_)) / micro;
  if (!std::isfinite(norm))
    fail("step: the gradient's norm is ", std::isnan(norm) ? "NaN" : "infinite",
         "; parameters, optimizer state and batch-norm statistics were left as they were before this step "
         "(check the inputs and the learning rate; clipGradNorm bounds large finite gradients only)");
  return norm;
}

void Executor::apply_update(float lr, double norm) {
  const OptimizerConfig& cfg = opts_.optimizer;
  double scale = 1.0 / (accumulated_ + 1);
  if (cfg.clip_grad_norm > 0) scale *= std::min(1.0, cfg.clip_grad_norm / (norm + 1e-6));  // PyTorch's clip_coef, clamped to 1
  accumulated_ = 0;
  const int bad = be_.optimizer_step(cfg, {lr, static_cast<float>(scale), updates_ + 1}, update_slots_);
  if (opts_.ema) {
    const double u = static_cast<double>(updates_);  // timm's warmup counts the updates before this one
    const float decay = opts_.ema_warmup ? static_cast<float>(std::min<double>(opts_.ema_decay, (1 + u) / (10 + u))) : opts_.ema_decay;
    be_.ema_step(decay, ema_slots_);
  }
  updates_++;
  if (bad >= 0) {
    const auto& p = g_.params[update_params_[bad]];
    fail("step: after the update, parameter ", p.name, " holds NaN or infinite values (the learning rate, ", lr,
         ", is probably too large). This step was applied: parameters, optimizer state and batch-norm statistics now "
         "hold its results, so restore them from a checkpoint (or re-create the session) before training on");
  }
}

void Executor::save_running_stats() {
  char* backup = static_cast<char*>(running_backup_);
  for (auto [id, off] : running_slots_) be_.copy(backup + off, param_data_[id], static_cast<size_t>(numel(g_.params[id].shape)) * 4);
}
void Executor::restore_running_stats() {
  const char* backup = static_cast<const char*>(running_backup_);
  for (auto [id, off] : running_slots_) be_.copy(param_data_[id], backup + off, static_cast<size_t>(numel(g_.params[id].shape)) * 4);
}

void Executor::forward(const Feeds& feeds, const std::vector<float*>& outs, bool ema) {
  if (ema && !opts_.ema) fail("forward: this session keeps no moving average of its weights (compile it with ema)");
  upload_feeds(feeds);
  run_forward(false, ema ? ema_fwd_io_ : fwd_io_);
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
    run_forward(true, fwd_io_);
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
  // Weights loaded before the first update (a state dict, rank 0's broadcast) are where the moving
  // average starts, as timm creates its EMA after loading the model; a checkpoint sets the EMA afterwards.
  if (updates_ == 0 && param_ema_.at(id)) be_.upload(param_ema_[id], host, static_cast<size_t>(numel(g_.params[id].shape)) * 4);
}
void Executor::read_state(int id, int k, float* host) const {
  if (k < 0 || k >= state_buffers(opts_.optimizer.rule)) fail("optimizer state buffer ", k, " does not exist for this update rule");
  if (!param_state_[k].at(id)) fail("parameter ", g_.params[id].name, " is not trainable: it has no optimizer state");
  be_.download(host, param_state_[k][id], static_cast<size_t>(numel(g_.params[id].shape)) * 4);
}
void Executor::write_state(int id, int k, const float* host) {
  if (k < 0 || k >= state_buffers(opts_.optimizer.rule)) fail("optimizer state buffer ", k, " does not exist for this update rule");
  if (!param_state_[k].at(id)) fail("parameter ", g_.params[id].name, " is not trainable: it has no optimizer state");
  be_.upload(param_state_[k][id], host, static_cast<size_t>(numel(g_.params[id].shape)) * 4);
}
void Executor::read_ema(int id, float* host) const {
  if (!param_ema_.at(id)) fail("this session keeps no moving average of its weights (compile it with ema)");
  be_.download(host, param_ema_[id], static_cast<size_t>(numel(g_.params[id].shape)) * 4);
}
void Executor::write_ema(int id, const float* host) {
  if (!param_ema_.at(id)) fail("this session keeps no moving average of its weights (compile it with ema)");
  be_.upload(param_ema_[id], host, static_cast<size_t>(numel(g_.params[id].shape)) * 4);
}

void Executor::set_loss_scaler(const LossScalerState& s) {
  scaler_.set_state(s);
  if (seed_) be_.upload(seed_, &s.scale, sizeof s.scale);
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
