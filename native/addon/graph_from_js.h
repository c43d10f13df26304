// Reads the graph IR (lib/graph/ir.ts) from a JS object into crunet::GraphDesc on the JS thread,
// throwing a TypeError that names the field (e.g. "graph.nodes[3].attrs.kernel") on bad input.
#pragma once
#include <napi.h>

#include "../core/graph.h"

namespace crunet::addon {

GraphDesc graph_from_js(const Napi::Value& v);

}  // namespace crunet::addon
