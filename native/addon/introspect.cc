#include "introspect.h"

#include "../core/ops.h"

namespace crunet::addon {

Napi::Value op_table_js(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto ops = Napi::Array::New(env);
  for (const OpDef& d : op_table()) {
    auto inputs = Napi::Array::New(env), params = Napi::Array::New(env), attrs = Napi::Array::New(env);
    for (const auto& in : d.inputs) {
      auto o = Napi::Object::New(env);
      o.Set("name", in.name);
      o.Set("dtype", dtype_name(in.dtype));
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

}  // namespace crunet::addon
