// Fully connected CRF with Gaussian edge potentials (Kraehenbuehl & Koltun 2011): mean-field
// inference with Potts compatibility, an appearance (bilateral) kernel over position and
// colour and a smoothness kernel over position, each filtered with a permutohedral lattice.
// The semantics follow the reference code (pydensecrf's DenseCRF2D with
// addPairwiseGaussian / addPairwiseBilateral, symmetric normalisation, inference):
//
//   unary      U_l(i) = -log(max(P_l(i), prob_floor))
//   start      Q = softmax(-U)
//   iterate    Q = softmax(-U + sum_k w_k * n_k .* K_k (n_k .* Q)),  n_k = 1 / sqrt(K_k 1)
//
// with K_k the lattice approximation of exp(-|f_i - f_j|^2 / 2) over the features
// f = (x, y) / sxy_gaussian (smoothness) and f = ((x, y) / sxy_bilateral, rgb / srgb)
// (appearance), x the column and y the row of a pixel.
#pragma once

#include <cstdint>

namespace ivos {

struct DenseCrfParams {
  int iterations = 5;            // mean-field iterations (0 returns the normalised input)
  float sxy_gaussian = 3.0f;     // smoothness kernel: position std in pixels
  float compat_gaussian = 3.0f;  // smoothness kernel weight (Potts)
  float sxy_bilateral = 80.0f;   // appearance kernel: position std in pixels
  float srgb = 13.0f;            // appearance kernel: colour std in 0..255 units
  float compat_bilateral = 10.0f;  // appearance kernel weight (Potts)
  float prob_floor = 1e-5f;      // probabilities are clipped to [prob_floor, 1] before -log
};

// Runs the dense CRF on one image.
//   image:      height x width x 3 uint8 RGB, row-major.
//   prob:       num_planes x height x width float32. num_planes == 1: the foreground
//               probability of a 2-label problem (background = 1 - prob); num_planes >= 2:
//               per-label probabilities (one plane per label).
//   out:        same layout as prob, receives the refined probabilities (may alias prob).
//   num_threads: worker threads (>= 1).
// Throws std::invalid_argument on bad sizes or parameters.
void dense_crf_cpu(const uint8_t* image, int64_t height, int64_t width, const float* prob, int num_planes,
                   const DenseCrfParams& params, float* out, int num_threads);

}  // namespace ivos
