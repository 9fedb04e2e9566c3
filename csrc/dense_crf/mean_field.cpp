#include "dense_crf/mean_field.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <type_traits>

#include "common/parallel.h"
#include "common/simd.h"
#include "common/stopwatch.h"
#include "dense_crf/fast_math.h"

namespace ivos {
namespace {

constexpr int64_t kMinPixelChunk = 16384;
// Points per block of the fused pass: the block's logits stay in L1 between the slices, the
// (vectorised) update and the splat.
constexpr int kBlock = 256;

void grow_to(std::vector<float>& v, size_t size) {
  if (v.size() < size) v.resize(size);
}

// Kernel k of a fused pass, its vertex count per point (VD = d + 1; 0: no such kernel) and
// its lattice's offset type fixed at compile time.
template <int VD, typename Index>
struct FusedKernel {
  static constexpr int kVertices = VD;
  using IndexType = Index;
  const Index* offset = nullptr;  // lattice slots per point and vertex
  const float* weight = nullptr;
  const float* blurred = nullptr;  // blurred values of the previous pass
  float scale = 0.0f;              // slice_scale()
  float potts = 0.0f;              // Potts weight

  // x[j] += potts * (scale * sum_r w * blurred[slot]) for the block's points: the exact
  // arithmetic of filter() + the multi-kernel update, so results match them.
  void add_messages(int64_t i0, int count, float* x) const {
    if constexpr (VD > 0) {
      for (int j = 0; j < count; ++j) {
        const Index* o = offset + (i0 + j) * VD;
        const float* w = weight + (i0 + j) * VD;
        float acc = 0.0f;
        for (int r = 0; r < VD; ++r) acc += w[r] * blurred[o[r]];
        x[j] += potts * (scale * acc);
      }
    }
  }

  // Splats the block's values v into dst.
  void splat(int64_t i0, int count, const float* v, float* dst) const {
    if constexpr (VD > 0) {
      for (int j = 0; j < count; ++j) {
        const Index* o = offset + (i0 + j) * VD;
        const float* w = weight + (i0 + j) * VD;
        for (int r = 0; r < VD; ++r) dst[o[r]] += w[r] * v[j];
      }
    }
  }
};

// One pass over points [b, e) of chunk `chunk`: (slice the previous blur into the messages
// when `slice`), q = sigmoid(logit + messages), and either write q (`last`) or splat
// 2 q - 1 into each kernel's splat buffer of this chunk.
template <typename KA, typename KB>
IVOS_AVX2_CLONES void fused_range(const KA& a, const KB& b, float* dst_a, float* dst_b, const float* logit,
                                  int64_t begin, int64_t end, bool slice, bool last, float* q) {
  float x[kBlock], v[kBlock];
  for (int64_t i0 = begin; i0 < end; i0 += kBlock) {
    const int count = static_cast<int>(std::min<int64_t>(kBlock, end - i0));
    std::copy_n(logit + i0, count, x);
    if (slice) {
      a.add_messages(i0, count, x);
      b.add_messages(i0, count, x);
    }
    if (last) {
      for (int j = 0; j < count; ++j) q[i0 + j] = sigmoid_approx(x[j]);
      continue;
    }
    for (int j = 0; j < count; ++j) v[j] = 2.0f * sigmoid_approx(x[j]) - 1.0f;
    a.splat(i0, count, v, dst_a);
    b.splat(i0, count, v, dst_b);
  }
}

template <typename KA, typename KB>
void binary_loop(const std::vector<PairwiseKernel>& kernels, const float* logit, int64_t n, int iterations, float* q,
                 int threads, MeanFieldScratch& scratch, CrfProfile* profile) {
  Stopwatch clock(profile != nullptr);
  double* update_ms = profile ? &profile->update_ms : nullptr;
  double* blur_ms = profile ? &profile->blur_ms : nullptr;
  // One contiguous point range per chunk, each splatting into its own buffers (no write
  // conflicts; the same split as PermutohedralLattice::filter, so the same sums).
  const int chunks = static_cast<int>(std::clamp<int64_t>(n / kMinPixelChunk, 1, threads));
  const int64_t per_chunk = (n + chunks - 1) / chunks;
  constexpr int VA = KA::kVertices, VB = KB::kVertices;
  KA ka;
  KB kb;
  const PermutohedralLattice* lattices[2] = {kernels.size() > 0 ? kernels[0].lattice : nullptr,
                                             kernels.size() > 1 ? kernels[1].lattice : nullptr};
  for (int k = 0; k < 2; ++k) {
    if (lattices[k] == nullptr) continue;
    auto& buf = scratch.kernels[k];
    if (static_cast<int>(buf.splat.size()) < chunks) buf.splat.resize(chunks);
    for (int c = 0; c < chunks; ++c) grow_to(buf.splat[c], lattices[k]->value_slots());
  }
  auto bind = [&](auto& kernel, int k) {
    kernel.offset = lattices[k]->template offsets<typename std::decay_t<decltype(kernel)>::IndexType>();
    kernel.weight = lattices[k]->weights();
    kernel.scale = lattices[k]->slice_scale();
    kernel.potts = kernels[k].weight;
  };
  if constexpr (VA > 0) bind(ka, 0);
  if constexpr (VB > 0) bind(kb, 1);
  for (int pass = 0; pass <= iterations; ++pass) {
    const bool slice = pass > 0, last = pass == iterations;
    parallel_for(chunks, 1, chunks, [&](int64_t cb, int64_t ce) {
      for (int64_t c = cb; c < ce; ++c) {
        float* dst[2] = {nullptr, nullptr};
        for (int k = 0; k < 2 && !last; ++k) {
          if (lattices[k] == nullptr) continue;
          dst[k] = scratch.kernels[k].splat[c].data();
          std::fill_n(dst[k], lattices[k]->value_slots(), 0.0f);
        }
        fused_range(ka, kb, dst[0], dst[1], logit, c * per_chunk, std::min(n, (c + 1) * per_chunk), slice,
                            last, q);
      }
    });
    clock.lap(update_ms);
    if (last) break;
    // The two lattices are independent: each kernel's chunk sums are reduced and blurred by
    // one task, both at once (a lattice of a few 10k vertices is blurred in ~0.1 ms per pass:
    // splitting that over threads axis by axis cost more in synchronisation than it saved).
    const int blur_threads = kernels.size() > 1 ? 1 : threads;
    parallel_for(static_cast<int64_t>(kernels.size()), 1, threads, [&](int64_t kb, int64_t ke) {
      for (int64_t k = kb; k < ke; ++k) {
        auto& buf = scratch.kernels[k];
        const int64_t slots = static_cast<int64_t>(lattices[k]->value_slots());
        float* sum = buf.splat[0].data();
        for (int c = 1; c < chunks; ++c) {
          const float* src = buf.splat[c].data();
          for (int64_t j = 0; j < slots; ++j) sum[j] += src[j];
        }
        lattices[k]->blur(buf.splat[0], buf.scratch, 1, blur_threads);
        buf.blurred.swap(buf.splat[0]);  // the next pass splats into a fresh buffer
        grow_to(buf.splat[0], slots);
      }
    });
    if constexpr (VA > 0) ka.blurred = scratch.kernels[0].blurred.data();
    if constexpr (VB > 0) kb.blurred = scratch.kernels[1].blurred.data();
    clock.lap(blur_ms);
  }
}

// binary_loop for lattices of VA and VB vertices per point, each with the offset type it holds.
template <int VA, int VB>
void binary_loop_for(const std::vector<PairwiseKernel>& kernels, const float* logit, int64_t n, int iterations,
                     float* q, int threads, MeanFieldScratch& scratch, CrfProfile* profile) {
  const bool narrow_a = VA == 0 || kernels[0].lattice->narrow_offsets();
  const bool narrow_b = VB == 0 || kernels[1].lattice->narrow_offsets();
  auto run = [&](auto index_a, auto index_b) {
    binary_loop<FusedKernel<VA, decltype(index_a)>, FusedKernel<VB, decltype(index_b)>>(kernels, logit, n, iterations,
                                                                                       q, threads, scratch, profile);
  };
  if (narrow_a && narrow_b) run(uint16_t{}, uint16_t{});
  else if (narrow_a) run(uint16_t{}, int32_t{});
  else if (narrow_b) run(int32_t{}, uint16_t{});
  else run(int32_t{}, int32_t{});
}

// softmax over the labels of one pixel, in place.
void softmax(float* x, int labels) {
  float mx = *std::max_element(x, x + labels), sum = 0.0f;
  for (int l = 0; l < labels; ++l) sum += (x[l] = std::exp(x[l] - mx));
  for (int l = 0; l < labels; ++l) x[l] /= sum;
}

}  // namespace

void mean_field_binary(const std::vector<PairwiseKernel>& kernels, const float* logit, int64_t n, int iterations,
                       float* q, int threads, MeanFieldScratch& scratch, CrfProfile* profile) {
  if (kernels.size() > 2) throw std::invalid_argument("mean_field_binary: at most 2 kernels");
  int vd[2] = {0, 0};
  for (size_t k = 0; k < kernels.size(); ++k) vd[k] = kernels[k].lattice->dim() + 1;
  if (iterations == 0 || kernels.empty()) {
    binary_loop_for<0, 0>(kernels, logit, n, 0, q, threads, scratch, profile);
  } else if (vd[0] == 6 && vd[1] == 3) {
    binary_loop_for<6, 3>(kernels, logit, n, iterations, q, threads, scratch, profile);
  } else if (vd[0] == 6 && vd[1] == 0) {
    binary_loop_for<6, 0>(kernels, logit, n, iterations, q, threads, scratch, profile);
  } else if (vd[0] == 3 && vd[1] == 0) {
    binary_loop_for<3, 0>(kernels, logit, n, iterations, q, threads, scratch, profile);
  } else {
    throw std::invalid_argument("mean_field_binary: kernels must be (d=5[, d=2]) or (d=2)");
  }
}

void mean_field_multi(const std::vector<PairwiseKernel>& kernels, const float* neg_unary, int64_t n, int labels,
                      int iterations, float* q, int threads, MeanFieldScratch& scratch, CrfProfile* profile) {
  double* update_ms = profile ? &profile->update_ms : nullptr;
  Stopwatch clock(profile != nullptr);
  for (size_t k = 0; k < kernels.size(); ++k) grow_to(scratch.msg[k], static_cast<size_t>(n) * labels);
  std::copy_n(neg_unary, n * labels, q);
  for (int64_t i = 0; i < n; ++i) softmax(q + i * labels, labels);
  clock.lap(update_ms);
  for (int it = 0; it < iterations; ++it) {
    for (size_t k = 0; k < kernels.size(); ++k)
      kernels[k].lattice->filter(q, scratch.msg[k].data(), labels, threads, scratch.filter);
    clock.lap(nullptr);
    parallel_for(n, kMinPixelChunk, threads, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        float* x = q + i * labels;
        for (int l = 0; l < labels; ++l) {
          x[l] = neg_unary[i * labels + l];
          for (size_t k = 0; k < kernels.size(); ++k) x[l] += kernels[k].weight * scratch.msg[k][i * labels + l];
        }
        softmax(x, labels);
      }
    });
    clock.lap(update_ms);
  }
}

}  // namespace ivos
