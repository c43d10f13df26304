// See loss_scaler.h.
#include "loss_scaler.h"

#include <cmath>

#include "error.h"

namespace crunet {

namespace {
bool finite_positive(float x) { return std::isfinite(x) && x > 0; }
// A scale the step can unscale by: 1/scale must be a finite float too (see update()).
bool usable_scale(float x) { return finite_positive(x) && std::isfinite(static_cast<float>(1.0 / static_cast<double>(x))); }
}  // namespace

LossScaler::LossScaler(const LossScalerConfig& cfg) : cfg_(cfg), state_{cfg.init_scale, 0} {
  if (!cfg_.enabled) return;
  if (!usable_scale(cfg_.init_scale))
    fail("lossScale: the initial scale must be a finite number > 0 in float32 whose inverse is finite too (above 2^-128), got ", cfg_.init_scale);
  if (!cfg_.dynamic) return;
  if (!(std::isfinite(cfg_.growth_factor) && cfg_.growth_factor > 1)) fail("lossScale: growthFactor must be a finite number > 1, got ", cfg_.growth_factor);
  if (!(cfg_.backoff_factor > 0 && cfg_.backoff_factor < 1)) fail("lossScale: backoffFactor must be in (0, 1), got ", cfg_.backoff_factor);
  if (cfg_.growth_interval < 1) fail("lossScale: growthInterval must be an integer >= 1, got ", cfg_.growth_interval);
}

void LossScaler::update(bool found_inf) {
  if (!cfg_.enabled || !cfg_.dynamic) return;
  if (found_inf) {
    const float backed_off = static_cast<float>(static_cast<double>(state_.scale) * cfg_.backoff_factor);
    if (usable_scale(backed_off)) state_.scale = backed_off;
    state_.growth_tracker = 0;
    return;
  }
  const int successful = state_.growth_tracker + 1;
  if (successful == cfg_.growth_interval) {
    const float grown = static_cast<float>(static_cast<double>(state_.scale) * cfg_.growth_factor);
    if (std::isfinite(grown)) state_.scale = grown;
    state_.growth_tracker = 0;
  } else {
    state_.growth_tracker = successful;
  }
}

void LossScaler::set_state(const LossScalerState& s) {
  if (!cfg_.enabled) fail("loss scaler state: this session was compiled without loss scaling");
  if (!usable_scale(s.scale))
    fail("loss scaler state: the scale must be a finite number > 0 in float32 whose inverse is finite too (above 2^-128), got ", s.scale);
  const int limit = cfg_.dynamic ? cfg_.growth_interval : 1;
  if (s.growth_tracker < 0 || s.growth_tracker >= limit)
    fail("loss scaler state: the growth tracker must be an integer in [0, ", limit, "), got ", s.growth_tracker);
  state_ = s;
}

}  // namespace crunet
