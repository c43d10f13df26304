// Factories for the CPU kernels, one file each; cpu_backend.cc dispatches on NodeSpec::op.
#pragma once
#include <memory>
#include <vector>

#include "../core/backend.h"

namespace crunet::cpu {

std::unique_ptr<Kernel> make_conv2d(const NodeSpec& spec);                 // conv2d.cc
std::unique_ptr<Kernel> make_linear(const NodeSpec& spec);                 // linear.cc
std::unique_ptr<Kernel> make_batch_norm(const NodeSpec& spec);             // batch_norm.cc
std::unique_ptr<Kernel> make_relu(const NodeSpec& spec);                   // relu.cc
std::unique_ptr<Kernel> make_pool(const NodeSpec& spec);                   // pool.cc (max, avg, global avg)
std::unique_ptr<Kernel> make_add(const NodeSpec& spec);                    // add.cc
std::unique_ptr<Kernel> make_softmax_cross_entropy(const NodeSpec& spec);  // softmax_cross_entropy.cc

// The update phase (optimizer.cc), as Backend declares it.
int optimizer_step(const OptimizerConfig& cfg, const UpdateStep& step, const std::vector<UpdateSlot>& slots);
double grad_sum_squares(const std::vector<UpdateSlot>& slots);
void ema_step(float decay, const std::vector<EmaSlot>& slots);

}  // namespace crunet::cpu
