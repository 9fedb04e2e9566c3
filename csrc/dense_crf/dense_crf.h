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

#include <cstddef>
#include <cstdint>
#include <memory>

#include "dense_crf/permutohedral.h"

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

// Milliseconds spent per stage (accumulated over the calls that were given it).
struct CrfProfile {
  double build_ms = 0;      // lattice construction (locate points, hash vertices, neighbours)
  double normalize_ms = 0;  // n = 1 / sqrt(K 1) per kernel (one filter pass each)
  double unary_ms = 0;      // -log(clip(prob)), start marginals, output layout
  double splat_ms = 0;      // lattice filter: points -> vertices
  double blur_ms = 0;       // lattice filter: [1/2 1 1/2] along each lattice axis
  double slice_ms = 0;      // lattice filter: vertices -> points
  double update_ms = 0;     // message passing: unary + weighted messages -> softmax; for two
                            // labels the fused pass: slice + sigmoid update + next splat
};

// The dense CRF of one image (or image region) with fixed parameters: the lattices of both
// kernels are built once (they depend on the pixels' positions and colours alone) and every
// infer() runs only the mean-field iterations for a new unary. Between two clicks on the
// same view only the unary changes, so a click pays for the lattices once per view.
//
// Memory: about 60 bytes per pixel (the appearance lattice; the smoothness lattice is shared
// through a small cache keyed by the image size and sxy_gaussian).
class DenseCrf {
 public:
  DenseCrf() = default;
  // image: height x width x 3 uint8 RGB, row-major (read during construction only).
  // Throws std::invalid_argument on bad sizes or parameters.
  DenseCrf(const uint8_t* image, int64_t height, int64_t width, const DenseCrfParams& params, int num_threads,
           CrfProfile* profile = nullptr) {
    build(image, height, width, params, num_threads, profile);
  }

  // Rebuilds for another image or parameters, reusing this object's buffers.
  void build(const uint8_t* image, int64_t height, int64_t width, const DenseCrfParams& params, int num_threads,
             CrfProfile* profile = nullptr);

  // Mean-field inference for one unary.
  //   prob: num_planes x height x width float32. num_planes == 1: the foreground probability
  //         of a 2-label problem (background = 1 - prob); num_planes >= 2: per-label
  //         probabilities (one plane per label).
  //   out:  same layout as prob, receives the refined probabilities (may alias prob).
  // const and thread-safe: scratch buffers belong to the calling thread.
  void infer(const float* prob, int num_planes, float* out, int num_threads, CrfProfile* profile = nullptr) const;

  int64_t height() const { return height_; }
  int64_t width() const { return width_; }
  const DenseCrfParams& params() const { return params_; }
  // Bytes of the lattices this object holds (the shared smoothness lattice included).
  size_t memory_bytes() const;

 private:
  int64_t height_ = 0, width_ = 0;
  DenseCrfParams params_;
  PermutohedralLattice bilateral_;
  bool use_bilateral_ = false;
  std::shared_ptr<const PermutohedralLattice> spatial_;  // null when its weight is 0
};

// Runs the dense CRF on one image: DenseCrf(image, ...).infer(prob, ...) on per-thread
// buffers kept between calls (a video refines frame after frame at one size).
//   image:      height x width x 3 uint8 RGB, row-major.
//   prob, out:  as DenseCrf::infer.
//   num_threads: worker threads (>= 1).
// Throws std::invalid_argument on bad sizes or parameters.
void dense_crf_cpu(const uint8_t* image, int64_t height, int64_t width, const float* prob, int num_planes,
                   const DenseCrfParams& params, float* out, int num_threads, CrfProfile* profile = nullptr);

}  // namespace ivos
