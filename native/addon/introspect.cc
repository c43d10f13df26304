// See introspect.h.
#include "introspect.h"

#include "../core/error.h"
#include "../core/ops.h"
#include "../core/schedule.h"
#include "graph_from_js.h"

namespace crunet::addon {
namespace {

// What a kernel keeps for backward, as the test says; by default nothing saved, every input read and the
// output not read.
KernelNeeds needs_from_js(const Napi::Value& v, const NodeInfo& node, size_t index) {
  KernelNeeds k;
  k.reads_input.assign(node.inputs.size(), 1);
  if (v.IsUndefined()) return k;
  const std::string where = "schedule: options.kernels[" + std::to_string(index) + "]";
  if (!v.IsObject()) throw Napi::TypeError::New(v.Env(), where + ": expected an object");
  auto o = v.As<Napi::Object>();
  if (o.Has("savedBytes")) {
    const int64_t bytes = o.Get("savedBytes").ToNumber().Int64Value();
    if (bytes < 0) throw Napi::RangeError::New(v.Env(), where + ".savedBytes: expected a number >= 0, but received " + std::to_string(bytes));
    k.saved_bytes = static_cast<size_t>(bytes);
  }
  if (o.Has("readsOutput")) k.reads_output = o.Get("readsOutput").ToBoolean().Value();
  if (o.Has("readsInputs")) {
    if (!o.Get("readsInputs").IsArray()) throw Napi::TypeError::New(v.Env(), where + ".readsInputs: expected an array");
    auto a = o.Get("readsInputs").As<Napi::Array>();
    if (a.Length() != node.inputs.size())
      throw Napi::RangeError::New(v.Env(), where + ".readsInputs: expected " + std::to_string(node.inputs.size()) +
                                               " entries, but received " + std::to_string(a.Length()));
    for (uint32_t j = 0; j < a.Length(); j++) k.reads_input[j] = a.Get(j).ToBoolean().Value();
  }
  return k;
}

Napi::Value dest_js(Napi::Env env, const TypedGraph& g, const GradDest& d) {
  auto o = Napi::Object::New(env);
  if (d.param >= 0) o.Set("param", g.params[d.param].name);
  else if (d.buffer >= 0) o.Set("buffer", d.buffer);
  else return env.Null();
  return o;
}

Napi::Object pass_js(Napi::Env env, const TypedGraph& g, const BackwardPass& p) {
  auto calls = Napi::Array::New(env);
  for (const auto& c : p.calls) {
    auto call = Napi::Object::New(env);
    call.Set("node", g.nodes[c.node].spec.name);
    call.Set("outGrad", c.out_grad);
    auto in = Napi::Array::New(env), params = Napi::Array::New(env), then = Napi::Array::New(env);
    for (const auto& d : c.in_grad) in.Set(in.Length(), dest_js(env, g, d));
    for (const auto& d : c.param_grad) params.Set(params.Length(), dest_js(env, g, d));
    for (const auto& a : c.then) {
      auto o = Napi::Object::New(env);
      o.Set("into", dest_js(env, g, a.into));
      o.Set("from", a.from);
      o.Set("count", static_cast<double>(a.count));
      then.Set(then.Length(), o);
    }
    call.Set("inGrad", in);
    call.Set("paramGrad", params);
    call.Set("accumulate", then);
    calls.Set(calls.Length(), call);
  }
  auto zero = Napi::Array::New(env), reached = Napi::Array::New(env);
  for (int v : p.zero_first) zero.Set(zero.Length(), g.values[v].name);
  for (size_t i = 0; i < p.param_reached.size(); i++)
    if (p.param_reached[i]) reached.Set(reached.Length(), g.params[i].name);
  auto o = Napi::Object::New(env);
  o.Set("target", g.values[p.target].name);
  o.Set("seedInLossKernel", p.seed_in_loss_kernel);
  o.Set("calls", calls);
  o.Set("zeroFirst", zero);
  o.Set("paramsReached", reached);
  return o;
}

}  // namespace

Napi::Value op_table_js(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto ops = Napi::Array::New(env);
  for (const OpDef& d : op_table()) {
    auto inputs = Napi::Array::New(env), params = Napi::Array::New(env), attrs = Napi::Array::New(env);
    for (const auto& in : d.inputs) {
      auto o = Napi::Object::New(env);
      o.Set("name", in.name);
      o.Set("dtype", dtype_name(in.dtype));
      o.Set("optional", in.kind == kOptionalData);
      o.Set("differentiable", in.differentiable());
      inputs.Set(inputs.Length(), o);
    }
    for (const auto& p : d.params) {
      auto o = Napi::Object::New(env);
      o.Set("name", p.name);
      o.Set("optional", p.kind == kOptional);
      o.Set("trainable", p.kind != kState);
      params.Set(params.Length(), o);
    }
    for (const auto& a : d.attrs) {
      auto o = Napi::Object::New(env);
      o.Set("name", a.name);
      o.Set("required", a.kind == kRequired);
      attrs.Set(attrs.Length(), o);
    }
    auto op = Napi::Object::New(env);
    op.Set("name", d.name);
    op.Set("inputs", inputs);
    op.Set("params", params);
    op.Set("attributes", attrs);
    ops.Set(ops.Length(), op);
  }
  return ops;
}

// schedule(graph, batch, {inputGrads?, kernels?: [{savedBytes?, readsInputs?, readsOutput?}] per node})
// -> {buffers: [{bytes, first, last}], values: [{name, data, grad}], saved: [buffer or -1 per node],
//     loss?: pass, output?: pass}; a pass is {target, seedInLossKernel, calls: [{node, outGrad, inGrad,
//     paramGrad, accumulate: [{into, from, count}]}], zeroFirst, paramsReached}, and a gradient's
//     destination is {buffer}, {param} or null. Buffer numbers index `buffers`; -1 means none.
// The graph is scheduled as given: compile's batchNorm+relu fusion (core/fusion.h) is not applied.
Napi::Value schedule_js(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[1].IsNumber() || (info.Length() > 2 && !info[2].IsUndefined() && !info[2].IsObject()))
    throw Napi::TypeError::New(env, "schedule(graph, batch: number, options?: {inputGrads?, kernels?})");
  GraphDesc desc = graph_from_js(info[0]);
  Napi::Object opts = info.Length() > 2 && info[2].IsObject() ? info[2].As<Napi::Object>() : Napi::Object::New(env);
  TypedGraph g;
  try {
    g = infer_shapes(desc, info[1].As<Napi::Number>().Int64Value());
  } catch (const Error& e) {
    throw Napi::Error::New(env, e.what());
  }
  Napi::Value kernels = opts.Get("kernels");
  if (!kernels.IsUndefined() && (!kernels.IsArray() || kernels.As<Napi::Array>().Length() != g.nodes.size()))
    throw Napi::TypeError::New(env, "schedule: options.kernels: expected an array with one entry per node (" +
                                        std::to_string(g.nodes.size()) + ")");
  std::vector<KernelNeeds> needs;
  for (size_t c = 0; c < g.nodes.size(); c++)
    needs.push_back(needs_from_js(kernels.IsUndefined() ? env.Undefined() : kernels.As<Napi::Array>().Get(static_cast<uint32_t>(c)),
                                  g.nodes[c], c));
  const Schedule s = make_schedule(g, needs, opts.Get("inputGrads").ToBoolean().Value());

  auto buffers = Napi::Array::New(env), values = Napi::Array::New(env), saved = Napi::Array::New(env);
  for (const auto& b : s.buffers) {
    auto o = Napi::Object::New(env);
    o.Set("bytes", static_cast<double>(b.bytes));
    o.Set("first", b.first);
    o.Set("last", b.last);
    buffers.Set(buffers.Length(), o);
  }
  for (size_t v = 0; v < g.values.size(); v++) {
    auto o = Napi::Object::New(env);
    o.Set("name", g.values[v].name);
    o.Set("data", s.value_data[v]);
    o.Set("grad", s.value_grad[v]);
    values.Set(values.Length(), o);
  }
  for (int b : s.saved) saved.Set(saved.Length(), b);
  auto r = Napi::Object::New(env);
  r.Set("buffers", buffers);
  r.Set("values", values);
  r.Set("saved", saved);
  if (s.loss_pass >= 0) r.Set("loss", pass_js(env, g, s.passes[s.loss_pass]));
  if (s.output_pass >= 0) r.Set("output", pass_js(env, g, s.passes[s.output_pass]));
  return r;
}

}  // namespace crunet::addon
