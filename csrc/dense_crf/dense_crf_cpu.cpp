#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "common/parallel.h"
#include "dense_crf/dense_crf.h"
#include "dense_crf/permutohedral.h"

namespace ivos {
namespace {

constexpr int64_t kMinPixelChunk = 16384;

// One pairwise term: its lattice, the symmetric normalisation n = 1 / sqrt(K 1) per pixel
// and the Potts weight.
struct Kernel {
  PermutohedralLattice lattice;
  std::vector<float> norm;
  float weight = 0.0f;
};

// Pixel features (x / sxy, y / sxy[, rgb / srgb]) as the reference computes them (division,
// not multiplication by a reciprocal, so the lattice sees the same coordinates).
std::vector<float> make_features(const uint8_t* image, int64_t h, int64_t w, float sxy, float srgb, bool colour) {
  const int d = colour ? 5 : 2;
  std::vector<float> f(h * w * d);
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      float* p = &f[(y * w + x) * d];
      p[0] = static_cast<float>(x) / sxy;
      p[1] = static_cast<float>(y) / sxy;
      if (colour) {
        const uint8_t* c = image + (y * w + x) * 3;
        for (int k = 0; k < 3; ++k) p[2 + k] = static_cast<float>(c[k]) / srgb;
      }
    }
  }
  return f;
}

void build_kernel(Kernel& kernel, const std::vector<float>& features, int64_t n, int d, float weight,
                  int value_size, int threads) {
  kernel.weight = weight;
  kernel.lattice.build(features.data(), n, d, threads);
  kernel.lattice.prepare(1, threads);
  std::vector<float> ones(n, 1.0f);
  kernel.norm.resize(n);
  kernel.lattice.filter(ones.data(), kernel.norm.data(), 1, threads);
  for (float& v : kernel.norm) v = 1.0f / std::sqrt(v + 1e-20f);
  kernel.lattice.prepare(value_size, threads);
}

// Message of one kernel: out = n .* K(n .* q) for value_size channels per pixel.
void kernel_message(Kernel& kernel, const float* q, float* in, float* out, int vs, int threads) {
  const int64_t n = kernel.lattice.num_points();
  const float* norm = kernel.norm.data();
  parallel_for(n, kMinPixelChunk, threads, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      for (int k = 0; k < vs; ++k) in[i * vs + k] = norm[i] * q[i * vs + k];
  });
  kernel.lattice.filter(in, out, vs, threads);
}

float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// Two labels: Potts messages enter the update only through the difference between the
// labels, K(n q1) - K(n q0) = K(n (2 q1 - 1)), so ONE channel per kernel suffices.
// logit: log P1 - log P0 per pixel (the unary difference); q: foreground marginal (out).
void infer_binary(std::vector<Kernel>& kernels, const std::vector<float>& logit, int iterations, float* q,
                  int threads) {
  const int64_t n = static_cast<int64_t>(logit.size());
  std::vector<float> v(n), in(n);
  std::vector<std::vector<float>> msg(kernels.size(), std::vector<float>(n));
  for (int64_t i = 0; i < n; ++i) q[i] = sigmoid(logit[i]);
  for (int it = 0; it < iterations; ++it) {
    parallel_for(n, kMinPixelChunk, threads, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) v[i] = 2.0f * q[i] - 1.0f;
    });
    for (size_t k = 0; k < kernels.size(); ++k) kernel_message(kernels[k], v.data(), in.data(), msg[k].data(), 1, threads);
    parallel_for(n, kMinPixelChunk, threads, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        float x = logit[i];
        for (size_t k = 0; k < kernels.size(); ++k) x += kernels[k].weight * kernels[k].norm[i] * msg[k][i];
        q[i] = sigmoid(x);
      }
    });
  }
}

// softmax over the labels of one pixel, in place.
void softmax(float* x, int labels) {
  float mx = *std::max_element(x, x + labels), sum = 0.0f;
  for (int l = 0; l < labels; ++l) sum += (x[l] = std::exp(x[l] - mx));
  for (int l = 0; l < labels; ++l) x[l] /= sum;
}

// L labels: all labels filtered at once (one lattice pass with L channels per kernel).
// neg_unary: -U, pixel-major n x L; q: marginals, pixel-major n x L (out).
void infer_multi(std::vector<Kernel>& kernels, const std::vector<float>& neg_unary, int labels, int iterations,
                 float* q, int threads) {
  const int64_t n = static_cast<int64_t>(neg_unary.size()) / labels;
  std::vector<float> in(n * labels);
  std::vector<std::vector<float>> msg(kernels.size(), std::vector<float>(n * labels));
  std::copy(neg_unary.begin(), neg_unary.end(), q);
  for (int64_t i = 0; i < n; ++i) softmax(q + i * labels, labels);
  for (int it = 0; it < iterations; ++it) {
    for (size_t k = 0; k < kernels.size(); ++k) kernel_message(kernels[k], q, in.data(), msg[k].data(), labels, threads);
    parallel_for(n, kMinPixelChunk, threads, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        float* x = q + i * labels;
        for (int l = 0; l < labels; ++l) {
          x[l] = neg_unary[i * labels + l];
          for (size_t k = 0; k < kernels.size(); ++k)
            x[l] += kernels[k].weight * kernels[k].norm[i] * msg[k][i * labels + l];
        }
        softmax(x, labels);
      }
    });
  }
}

void check_params(int64_t height, int64_t width, int num_planes, const DenseCrfParams& p) {
  if (height < 1 || width < 1) throw std::invalid_argument("dense_crf: empty image");
  if (num_planes < 1) throw std::invalid_argument("dense_crf: num_planes must be >= 1");
  if (p.iterations < 0) throw std::invalid_argument("dense_crf: iterations must be >= 0");
  if (!(p.sxy_gaussian > 0) || !(p.sxy_bilateral > 0) || !(p.srgb > 0))
    throw std::invalid_argument("dense_crf: sxy_gaussian, sxy_bilateral and srgb must be > 0");
  if (!(p.compat_gaussian >= 0) || !(p.compat_bilateral >= 0))
    throw std::invalid_argument("dense_crf: compat weights must be >= 0");
  if (!(p.prob_floor > 0) || !(p.prob_floor < 1)) throw std::invalid_argument("dense_crf: prob_floor must be in (0, 1)");
}

}  // namespace

void dense_crf_cpu(const uint8_t* image, int64_t height, int64_t width, const float* prob, int num_planes,
                   const DenseCrfParams& params, float* out, int num_threads) {
  check_params(height, width, num_planes, params);
  const int threads = std::max(1, num_threads);
  const int64_t n = height * width;
  const bool binary = num_planes <= 2;
  const int value_size = binary ? 1 : num_planes;

  // A kernel with weight 0 contributes nothing: skip building its lattice.
  std::vector<Kernel> kernels;
  kernels.reserve(2);
  if (params.iterations > 0 && params.compat_bilateral > 0) {
    kernels.emplace_back();
    build_kernel(kernels.back(), make_features(image, height, width, params.sxy_bilateral, params.srgb, true), n, 5,
                 params.compat_bilateral, value_size, threads);
  }
  if (params.iterations > 0 && params.compat_gaussian > 0) {
    kernels.emplace_back();
    build_kernel(kernels.back(), make_features(image, height, width, params.sxy_gaussian, 1.0f, false), n, 2,
                 params.compat_gaussian, value_size, threads);
  }

  const float floor = params.prob_floor;
  auto log_p = [floor](float p) { return std::log(std::min(1.0f, std::max(p, floor))); };
  if (binary) {
    const float* fg = num_planes == 1 ? prob : prob + n;
    std::vector<float> logit(n);
    for (int64_t i = 0; i < n; ++i) logit[i] = log_p(fg[i]) - log_p(num_planes == 1 ? 1.0f - fg[i] : prob[i]);
    float* q = num_planes == 1 ? out : out + n;
    infer_binary(kernels, logit, params.iterations, q, threads);
    if (num_planes == 2)
      for (int64_t i = 0; i < n; ++i) out[i] = 1.0f - q[i];
    return;
  }
  const int labels = num_planes;
  std::vector<float> neg_unary(n * labels), q(n * labels);
  for (int64_t i = 0; i < n; ++i)
    for (int l = 0; l < labels; ++l) neg_unary[i * labels + l] = log_p(prob[l * n + i]);
  infer_multi(kernels, neg_unary, labels, params.iterations, q.data(), threads);
  for (int l = 0; l < labels; ++l)
    for (int64_t i = 0; i < n; ++i) out[l * n + i] = q[i * labels + l];
}

}  // namespace ivos
