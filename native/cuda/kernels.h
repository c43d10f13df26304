// Factories for the CUDA kernels, one file per kernel family; cuda_backend.cc dispatches on NodeSpec::op.
// Activations are plain NCHW f32 on this backend (rank 2 [N,F] row-major), see backend.h.
#pragma once
#include <memory>

#include "cuda_util.h"

namespace crunet::cuda {

std::unique_ptr<Kernel> make_conv2d(Device& dev, const NodeSpec& spec);                 // conv2d.cc (cuDNN)
std::unique_ptr<Kernel> make_linear(Device& dev, const NodeSpec& spec);                 // linear.cu (cuBLAS)
std::unique_ptr<Kernel> make_batch_norm(Device& dev, const NodeSpec& spec);             // batch_norm.cu (cuDNN)
std::unique_ptr<Kernel> make_pool(Device& dev, const NodeSpec& spec);                   // pool.cc (cuDNN max/avg)
std::unique_ptr<Kernel> make_global_avg_pool(Device& dev, const NodeSpec& spec);        // global_avg_pool.cu
std::unique_ptr<Kernel> make_relu(Device& dev, const NodeSpec& spec);                   // relu.cu
std::unique_ptr<Kernel> make_add(Device& dev, const NodeSpec& spec);                    // add.cu
std::unique_ptr<Kernel> make_softmax_cross_entropy(Device& dev, const NodeSpec& spec);  // softmax_cross_entropy.cu

// Backend-level helpers, enqueued on dev.stream.
void accumulate(Device& dev, float* dst, const float* src, size_t n);            // add.cu: dst += src
// optimizer.cu: one parameter each. optimizer_update sets *nonfinite (device) on NaN/Inf and uses sums
// (two zeroed device doubles) for LAMB's norms; add_sum_squares adds the squares of g to *sum (device).
void optimizer_update(Device& dev, const OptimizerConfig& cfg, const UpdateStep& step, const UpdateSlot& slot, int* nonfinite, double* sums);
void add_sum_squares(Device& dev, const float* g, size_t n, double* sum);
void ema_update(Device& dev, float decay, const EmaSlot& slot);

}  // namespace crunet::cuda
