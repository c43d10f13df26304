// Graph rewrites the executor applies before shape inference, each only where the backend supports it.
#pragma once
#include "graph.h"

namespace crunet {

// batchNorm -> relu, where the relu is the batch norm's only consumer, the batch norm's output is not a
// graph output and its input is not a graph input, becomes one batchNorm with fuseRelu (named after the batch norm; the relu's consumers
// and outputs read it instead). Pre-activation networks are mostly such pairs: fusing saves a pass over
// every activation in both directions.
GraphDesc fuse_batch_norm_relu(const GraphDesc& g);

}  // namespace crunet
