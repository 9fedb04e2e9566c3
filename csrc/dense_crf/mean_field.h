// Mean-field inference of the dense CRF over built lattices (dense_crf.h has the model):
//   Q = softmax(-U),  then per iteration  Q = softmax(-U + sum_k w_k * n_k .* K_k (n_k .* Q))
// with Potts compatibility; each lattice's filter() is n_k .* K_k (n_k .* .).
#pragma once

#include <cstdint>
#include <vector>

#include "dense_crf/dense_crf.h"
#include "dense_crf/permutohedral.h"

namespace ivos {

// One pairwise term: its normalised lattice and its Potts weight.
struct PairwiseKernel {
  const PermutohedralLattice* lattice;
  float weight;
};

// Scratch of the inference loops, reused between calls (one per thread).
struct MeanFieldScratch {
  PermutohedralLattice::Workspace filter;
  // Two labels, per kernel: one splat buffer per point chunk (the first one is then
  // reduced and blurred in place), the blurred values of the previous pass, the blur's scratch.
  struct KernelBuffers {
    std::vector<std::vector<float>> splat;
    std::vector<float> blurred, scratch;
  } kernels[2];
  std::vector<float> msg[2], q;
};

// Two labels. logit: n values log P1 - log P0 (the unary difference); q: n foreground
// marginals (out). Potts messages enter the update only through the difference between the
// labels, K(n q1) - K(n q0) = K(n (2 q1 - 1)), so ONE channel per kernel suffices; the slice
// of one iteration, the update and the splat of the next run as one pass over the points.
// Kernels: at most 2, lattices of d = 2 or d = 5 (the dense CRF's smoothness and appearance).
void mean_field_binary(const std::vector<PairwiseKernel>& kernels, const float* logit, int64_t n, int iterations,
                       float* q, int threads, MeanFieldScratch& scratch, CrfProfile* profile);

// L labels. neg_unary: -U, pixel-major n x L; q: marginals, pixel-major n x L (out). All
// labels are filtered at once (one lattice pass with L channels per kernel).
void mean_field_multi(const std::vector<PairwiseKernel>& kernels, const float* neg_unary, int64_t n, int labels,
                      int iterations, float* q, int threads, MeanFieldScratch& scratch, CrfProfile* profile);

}  // namespace ivos
