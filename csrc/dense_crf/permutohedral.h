// Permutohedral lattice (Adams, Baek, Davis 2010) for fast high-dimensional Gaussian
// filtering, as used by the dense CRF of Kraehenbuehl & Koltun 2011: values at N points with
// d-dimensional features are splatted onto the vertices of the enclosing simplices, blurred
// with a [1/2 1 1/2] kernel along each of the d+1 lattice axes, and sliced back. The result
// approximates sum_j exp(-|f_i - f_j|^2 / 2) * v_j up to a constant factor (the dense CRF
// normalises it away), with features given in units of the Gaussian's standard deviation.
//
// The lattice is built once per feature set and is read-only afterwards: filter() keeps its
// scratch in a caller-owned Workspace, so one lattice can serve several threads at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

namespace ivos {

class PermutohedralLattice {
 public:
  // Scratch buffers of filter(); reusable across lattices and calls (they only grow).
  struct Workspace {
    std::vector<float> values, blurred;
    std::vector<std::vector<float>> splat;  // one per extra thread
    // When set, filter() adds the milliseconds of its three stages here (profiling).
    double* splat_ms = nullptr;
    double* blur_ms = nullptr;
    double* slice_ms = nullptr;
  };

  // Builds the lattice of an image's pixels with the dense CRF's features, (x / sxy, y / sxy)
  // or, given rgb (height x width x 3), (x / sxy, y / sxy, r / srgb, g / srgb, b / srgb), x the
  // column and y the row (features in units of the Gaussian's standard deviation), computing
  // them on the fly.
  void build_pixels(const uint8_t* rgb, int64_t height, int64_t width, float sxy, float srgb, int num_threads);

  // Switches to the symmetric normalisation of the dense CRF: from now on filter() computes
  // nrm .* K(nrm .* in) with nrm = 1 / sqrt(K 1) per point, K the plain lattice filter.
  // Folding nrm into the splat and slice weights saves two passes over the points per call.
  void normalize(int num_threads, Workspace& ws);

  // out = lattice filter of in; both row-major n x value_size (they must not alias),
  // value_size in [1, kMaxValues].
  void filter(const float* in, float* out, int value_size, int num_threads, Workspace& ws) const;

  // Per-point access, for callers that fuse the splat and the slice with their own work per
  // point (the dense CRF's mean-field update): point i's d+1 enclosing vertices have the value
  // slots offsets[i * (d+1) + r] (vertex index + 1; slot 0 is a "none" slot that stays 0)
  // and the weights weights()[i * (d+1) + r] (normalisation folded in). filter() is: values
  // of value_slots() x vs zeros, += w * in_i at point i's slots, blur(), then
  // out_i = slice_scale() * sum_r w * values[slot].
  //
  // The offsets are uint16_t when every slot fits (value_slots() <= 65536: an image's
  // appearance lattice has some 10k-50k vertices), else int32_t: the per-point passes stream
  // them, so half the bytes is ~10% of a mean-field pass. with_offsets(fn) calls
  // fn(const uint16_t*) or fn(const int32_t*), whichever this lattice holds.
  template <typename Fn>
  decltype(auto) with_offsets(Fn&& fn) const {
    return narrow_ ? fn(offset16_.data()) : fn(static_cast<const int32_t*>(offset_.data()));
  }
  bool narrow_offsets() const { return narrow_; }
  // The offsets as Index: uint16_t when narrow_offsets(), else int32_t (nullptr for the other).
  template <typename Index>
  const Index* offsets() const {
    if constexpr (std::is_same_v<Index, uint16_t>) return narrow_ ? offset16_.data() : nullptr;
    else return narrow_ ? nullptr : static_cast<const int32_t*>(offset_.data());
  }
  const float* weights() const { return weight_.data(); }
  size_t value_slots() const { return static_cast<size_t>(m_) + 1; }
  float slice_scale() const;
  // Blurs values (value_slots() x vs) in place along every lattice axis; scratch is grown
  // as needed and left undefined.
  void blur(std::vector<float>& values, std::vector<float>& scratch, int vs, int num_threads) const;

  // Frees the 32-bit offsets the build wrote when the lattice keeps 16-bit ones (a build
  // reuses them otherwise: call this on lattices that are kept, not rebuilt).
  void release_build_scratch();

  int64_t num_points() const { return n_; }
  int64_t num_vertices() const { return m_; }
  int dim() const { return d_; }
  // Bytes held by the lattice's arrays (for cache budgets).
  size_t memory_bytes() const;

  static constexpr int kMaxDim = 16;
  static constexpr int kMaxValues = 256;  // channels per filter() call

 private:
  // Splats in (n x vs) into ws.values; in == nullptr splats ones (vs must be 1).
  void splat(const float* in, int vs, int num_threads, Workspace& ws) const;
  void slice(float* out, int vs, int num_threads, const Workspace& ws) const;

  int64_t n_ = 0;  // points
  int64_t m_ = 0;  // lattice vertices
  int d_ = 0;
  // Per point and simplex vertex (n x (d+1)): vertex index + 1 (0 is a zero "none" slot
  // that neighbours outside the lattice read) and barycentric weight. The build writes
  // offset_; when the slots fit in 16 bits they are copied to offset16_ and narrow_ is set.
  std::vector<int32_t> offset_;
  std::vector<uint16_t> offset16_;
  bool narrow_ = false;
  std::vector<float> weight_;
  // Per axis and vertex ((d+1) x m x 2): the two blur neighbours' slots (0 = none).
  std::vector<int32_t> neighbors_;
};

}  // namespace ivos
