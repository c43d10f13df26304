// Read-only views of the core's tables for the tests: the op table and a graph's schedule, each as plain
// JS data, computed on the JS thread without a backend.
#pragma once
#include <napi.h>

namespace crunet::addon {

// opTable() -> [{name, inputs: [{name, dtype}], params: [{name, optional, trainable}], attributes: [{name, required}]}]
Napi::Value op_table_js(const Napi::CallbackInfo& info);
// schedule(graph, batch, options?) -> the schedule (core/schedule.h) of the graph; see introspect.cc.
Napi::Value schedule_js(const Napi::CallbackInfo& info);

}  // namespace crunet::addon
