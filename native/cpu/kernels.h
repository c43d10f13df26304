// Factories for the CPU kernels, one file each; cpu_backend.cc dispatches on NodeSpec::op.
#pragma once
#include <memory>

#include "../core/backend.h"

namespace crunet::cpu {

std::unique_ptr<Kernel> make_conv2d(const NodeSpec& spec);                 // conv2d.cc
std::unique_ptr<Kernel> make_linear(const NodeSpec& spec);                 // linear.cc
std::unique_ptr<Kernel> make_batch_norm(const NodeSpec& spec);             // batch_norm.cc
std::unique_ptr<Kernel> make_relu(const NodeSpec& spec);                   // relu.cc
std::unique_ptr<Kernel> make_pool(const NodeSpec& spec);                   // pool.cc (max, avg, global avg)
std::unique_ptr<Kernel> make_add(const NodeSpec& spec);                    // add.cc
std::unique_ptr<Kernel> make_softmax_cross_entropy(const NodeSpec& spec);  // softmax_cross_entropy.cc

}  // namespace crunet::cpu
