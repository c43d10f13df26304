#include "graph_from_js.h"

#include <cmath>

namespace crunet::addon {
namespace {

[[noreturn]] void type_error(Napi::Env env, const std::string& path, const std::string& want) {
  throw Napi::TypeError::New(env, path + ": expected " + want);
}

Napi::Object object(const Napi::Value& v, const std::string& path) {
  if (!v.IsObject() || v.IsArray()) type_error(v.Env(), path, "an object");
  return v.As<Napi::Object>();
}
Napi::Array array(const Napi::Value& v, const std::string& path) {
  if (!v.IsArray()) type_error(v.Env(), path, "an array");
  return v.As<Napi::Array>();
}
std::string string(const Napi::Value& v, const std::string& path) {
  if (!v.IsString()) type_error(v.Env(), path, "a string");
  return v.As<Napi::String>().Utf8Value();
}
double number(const Napi::Value& v, const std::string& path) {
  if (!v.IsNumber() || !std::isfinite(v.As<Napi::Number>().DoubleValue())) type_error(v.Env(), path, "a finite number");
  return v.As<Napi::Number>().DoubleValue();
}
bool boolean(const Napi::Value& v, const std::string& path) {
  if (!v.IsBoolean()) type_error(v.Env(), path, "a boolean");
  return v.As<Napi::Boolean>().Value();
}
std::vector<std::string> strings(const Napi::Value& v, const std::string& path) {
  auto a = array(v, path);
  std::vector<std::string> r;
  for (uint32_t i = 0; i < a.Length(); i++) r.push_back(string(a.Get(i), path + "[" + std::to_string(i) + "]"));
  return r;
}
Shape shape(const Napi::Value& v, const std::string& path) {
  auto a = array(v, path);
  Shape s;
  for (uint32_t i = 0; i < a.Length(); i++) {
    double d = number(a.Get(i), path + "[" + std::to_string(i) + "]");
    if (d != std::floor(d) || d < 1 || d > 1e9) type_error(v.Env(), path + "[" + std::to_string(i) + "]", "a positive integer");
    s.push_back(static_cast<int64_t>(d));
  }
  return s;
}

InitDesc init(const Napi::Value& v, const std::string& path) {
  auto o = object(v, path);
  InitDesc d;
  std::string dist = string(o.Get("dist"), path + ".dist");
  if (dist == "normal") {
    d.dist = InitDesc::normal;
    d.a = o.Has("mean") && !o.Get("mean").IsUndefined() ? number(o.Get("mean"), path + ".mean") : 0;
    d.b = number(o.Get("std"), path + ".std");
    if (d.b < 0) type_error(v.Env(), path + ".std", "a number >= 0");
  } else if (dist == "uniform") {
    d.dist = InitDesc::uniform;
    d.a = number(o.Get("low"), path + ".low");
    d.b = number(o.Get("high"), path + ".high");
    if (d.b < d.a) type_error(v.Env(), path + ".high", "a number >= low");
  } else if (dist == "constant") {
    d.dist = InitDesc::constant;
    d.a = number(o.Get("value"), path + ".value");
  } else {
    type_error(v.Env(), path + ".dist", "'normal', 'uniform' or 'constant', got '" + dist + "'");
  }
  return d;
}

}  // namespace

GraphDesc graph_from_js(const Napi::Value& v) {
  auto g = object(v, "graph");
  GraphDesc d;
  auto inputs = array(g.Get("inputs"), "graph.inputs");
  for (uint32_t i = 0; i < inputs.Length(); i++) {
    std::string p = "graph.inputs[" + std::to_string(i) + "]";
    auto o = object(inputs.Get(i), p);
    InputDesc in;
    in.name = string(o.Get("name"), p + ".name");
    in.shape = shape(o.Get("shape"), p + ".shape");
    std::string dt = o.Has("dtype") && !o.Get("dtype").IsUndefined() ? string(o.Get("dtype"), p + ".dtype") : "f32";
    if (dt == "f32") in.dtype = DType::f32;
    else if (dt == "i32") in.dtype = DType::i32;
    else type_error(v.Env(), p + ".dtype", "'f32' or 'i32', got '" + dt + "'");
    d.inputs.push_back(std::move(in));
  }
  auto params = array(g.Get("params"), "graph.params");
  for (uint32_t i = 0; i < params.Length(); i++) {
    std::string p = "graph.params[" + std::to_string(i) + "]";
    auto o = object(params.Get(i), p);
    ParamDesc pd;
    pd.name = string(o.Get("name"), p + ".name");
    pd.shape = shape(o.Get("shape"), p + ".shape");
    pd.init = init(o.Get("init"), p + ".init");
    pd.trainable = boolean(o.Get("trainable"), p + ".trainable");
    pd.weight_decay = boolean(o.Get("weightDecay"), p + ".weightDecay");
    d.params.push_back(std::move(pd));
  }
  auto nodes = array(g.Get("nodes"), "graph.nodes");
  for (uint32_t i = 0; i < nodes.Length(); i++) {
    std::string p = "graph.nodes[" + std::to_string(i) + "]";
    auto o = object(nodes.Get(i), p);
    NodeDesc n;
    n.name = string(o.Get("name"), p + ".name");
    n.op = string(o.Get("op"), p + ".op");
    n.inputs = strings(o.Get("inputs"), p + ".inputs");
    n.params = strings(o.Get("params"), p + ".params");
    auto attrs = object(o.Get("attrs"), p + ".attrs");
    auto keys = attrs.GetPropertyNames();
    for (uint32_t k = 0; k < keys.Length(); k++) {
      std::string key = keys.Get(k).As<Napi::String>().Utf8Value();
      std::string ap = p + ".attrs." + key;
      Napi::Value a = attrs.Get(key);
      std::vector<double> vals;
      if (a.IsBoolean()) vals.push_back(a.As<Napi::Boolean>().Value() ? 1 : 0);
      else if (a.IsNumber()) vals.push_back(number(a, ap));
      else if (a.IsArray()) {
        auto arr = a.As<Napi::Array>();
        for (uint32_t j = 0; j < arr.Length(); j++) vals.push_back(number(arr.Get(j), ap + "[" + std::to_string(j) + "]"));
      } else type_error(v.Env(), ap, "a number, a boolean or an array of numbers");
      n.attrs[key] = std::move(vals);
    }
    d.nodes.push_back(std::move(n));
  }
  d.outputs = strings(g.Get("outputs"), "graph.outputs");
  if (g.Has("loss") && !g.Get("loss").IsUndefined()) d.loss = string(g.Get("loss"), "graph.loss");
  return d;
}

}  // namespace crunet::addon
