// Dynamic loss scaling with the semantics of PyTorch's torch.amp.GradScaler (docs/ARCHITECTURE.md,
// "Precision"). A low-precision backward (fp16 above all: its smallest normal is 6e-5) flushes small
// gradients to zero; seeding the loss gradient with `scale` instead of 1 lifts them into range. Before the
// update the gradients are multiplied by 1/scale; a step whose gradients hold an infinity or a NaN is
// skipped (nothing changes) and the scale backs off; after growth_interval good steps in a row it grows.
// This class is the policy only: the executor seeds, unscales and skips (executor.cc, step()).
#pragma once

namespace crunet {

struct LossScalerConfig {
  bool enabled = false;
  bool dynamic = true;          // false: a fixed scale; an overflowing step is still skipped
  float init_scale = 65536.0f;  // PyTorch's defaults: 2^16, x2 after 2000 good steps, x0.5 on an overflow
  // Double, as GradScaler's: an update computes scale * factor in double and rounds once to float.
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  int growth_interval = 2000;
};

// What a checkpoint keeps so that a resumed run scales as the uninterrupted one would.
struct LossScalerState {
  float scale;
  int growth_tracker;  // good steps since the scale last changed
};

class LossScaler {
 public:
  // Throws crunet::Error for a configuration outside what GradScaler accepts (checked again here, since
  // the TypeScript checks are not the only way in).
  explicit LossScaler(const LossScalerConfig& cfg);

  bool enabled() const { return cfg_.enabled; }
  const LossScalerConfig& config() const { return cfg_; }
  float scale() const { return state_.scale; }
  // 1/scale rounded once from double, as GradScaler computes it (scale.double().reciprocal().float()).
  float inverse_scale() const { return static_cast<float>(1.0 / static_cast<double>(state_.scale)); }

  // After a step's gradients were unscaled and checked (torch._amp_update_scale_): an overflow backs the
  // scale off and restarts the count of good steps; the growth_interval-th good step in a row grows it,
  // unless growing would overflow float. A fixed scale never changes. Each new scale is
  // float(double(scale) * factor), as GradScaler's. Unlike GradScaler, a back-off that would leave a scale
  // whose inverse is not a finite float (below about 2^-128) keeps the scale: unscaling by an infinite
  // 1/scale would turn zero gradients into NaN.
  void update(bool found_inf);

  LossScalerState state() const { return state_; }
  // Throws crunet::Error for a scale that is not a finite positive float with a finite inverse, or a
  // tracker outside [0, growth_interval).
  void set_state(const LossScalerState& s);

 private:
  LossScalerConfig cfg_;
  LossScalerState state_;
};

}  // namespace crunet
