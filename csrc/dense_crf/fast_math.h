// exp, log and the logistic function as plain float arithmetic that compilers vectorise
// (std::exp and std::log are a libm call per element). exp: Cody-Waite range reduction to
// |r| <= ln2/2 and a degree-6 Taylor polynomial, relative error <= 2e-7 (a few float ulps)
// over the whole float range. log: see log_approx.
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

// Natural log of a positive normal float x: x = m 2^e with m in [sqrt(1/2), sqrt(2)), then
// log m = 2 atanh(t), t = (m - 1) / (m + 1), |t| <= 0.172, by its odd series to t^9 (the next
// term is < 4e-10): relative error <= 2.1e-7 against double log on [1e-6, 1] (a float ulp or two).
// Not for 0, negatives, subnormals, inf or NaN (callers clamp to a positive floor first).
inline float log_approx(float x) {
  int32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  // Subtracting sqrt(1/2)'s bits before taking the exponent puts m in [sqrt(1/2), sqrt(2)).
  const int32_t e = (bits - 0x3f3504f3) >> 23;
  const int32_t m_bits = bits - e * (int32_t{1} << 23);
  float m;
  std::memcpy(&m, &m_bits, sizeof(m));
  const float t = (m - 1.0f) / (m + 1.0f);
  const float t2 = t * t;
  float p = 1.0f / 9.0f;
  p = p * t2 + 1.0f / 7.0f;
  p = p * t2 + 1.0f / 5.0f;
  p = p * t2 + 1.0f / 3.0f;
  p = p * t2 + 1.0f;
  return static_cast<float>(e) * 0.693147180559945f + 2.0f * t * p;
}

// 1 / (1 + exp(-x)): the foreground marginal of a two-label pixel with logit x.
inline float sigmoid_approx(float x) { return 1.0f / (1.0f + exp_approx(-x)); }

}  // namespace ivos
