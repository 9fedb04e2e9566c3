// exp and the logistic function as plain float arithmetic that compilers vectorise (std::exp
// is a libm call per element): Cody-Waite range reduction to |r| <= ln2/2 and a degree-6
// Taylor polynomial, relative error <= 2e-7 (a few float ulps) over the whole float range.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace ivos {

inline float exp_approx(float x) {
  // Clamped so that 2^n stays a normal float; exp(-87.3) ~ 1e-38, exp(88.3) ~ 2e38.
  x = std::min(std::max(x, -87.3f), 88.3f);
  // n = round(x / ln2) by the 1.5 * 2^23 trick (default rounding mode; no SSE4.1 round).
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  // r = x - n ln2, with ln2 split in a high part exact in float and a low correction.
  const float r = (x - n * 0.693145751953125f) - n * 1.42860682030941723e-6f;
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;  // 2^n
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

// 1 / (1 + exp(-x)): the foreground marginal of a two-label pixel with logit x.
inline float sigmoid_approx(float x) { return 1.0f / (1.0f + exp_approx(-x)); }

}  // namespace ivos
