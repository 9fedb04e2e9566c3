#include "dense_crf/permutohedral.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "common/parallel.h"

namespace ivos {
namespace {

// Points per parallel chunk: below this, thread start-up costs more than the work.
constexpr int64_t kMinPointChunk = 16384;
constexpr int64_t kMinVertexChunk = 8192;

// Open-addressing hash table from lattice keys (d int32 coordinates; the (d+1)-th is
// implied: they sum to 0) to dense vertex indices. Each slot holds a 64-bit tag next to
// the index, so a probe touches one cache line: when every coordinate fits in `bits` bits
// (checked by the caller) the tag IS the key, packed, and equal tags mean equal keys;
// otherwise the tag is a hash and equal tags are confirmed against the stored key.
// Grows by doubling during the build only.
class KeyTable {
 public:
  // bits: coordinate width for packing (d * bits <= 64), 0 for hashed tags.
  KeyTable(int d, int bits) : d_(d), bits_(bits) { reset(4096); }

  // Index of key, inserting it if absent.
  int32_t insert(const int32_t* key) {
    const uint64_t tag = make_tag(key);
    // Packed keys: a small direct-mapped cache of recent vertices (it stays in L1) answers
    // most look-ups, since consecutive pixels keep touching the same few vertices.
    Slot& cached = recent_[(tag * 0x9E3779B97F4A7C15ull) >> (64 - kRecentBits)];
    if (bits_ > 0 && cached.index >= 0 && cached.tag == tag) return cached.index;
    if (2 * (size_ + 1) > static_cast<int64_t>(slots_.size())) grow();
    Slot& slot = slots_[probe(tag, key)];
    if (slot.index < 0) {
      slot = {tag, static_cast<int32_t>(size_++)};
      keys_.insert(keys_.end(), key, key + d_);
    }
    cached = slot;
    return slot.index;
  }

  // Index of key, or -1 when absent. Read-only: safe to call from several threads.
  int32_t find(const int32_t* key) const { return slots_[probe(make_tag(key), key)].index; }

  int64_t size() const { return size_; }
  const std::vector<int32_t>& keys() const { return keys_; }

 private:
  struct Slot {
    uint64_t tag = 0;
    int32_t index = -1;
  };

  uint64_t make_tag(const int32_t* key) const {
    uint64_t t = 0;
    if (bits_ > 0) {
      const uint64_t bias = uint64_t{1} << (bits_ - 1), mask = (uint64_t{1} << bits_) - 1;
      for (int i = 0; i < d_; ++i) t = (t << bits_) | ((static_cast<uint64_t>(key[i]) + bias) & mask);
      return t;
    }
    for (int i = 0; i < d_; ++i) t = (t + static_cast<uint32_t>(key[i])) * 0x9E3779B97F4A7C15ull;
    return t;
  }

  void reset(int64_t cap) {
    slots_.assign(cap, Slot{});
    shift_ = 64;
    for (int64_t c = cap; c > 1; c >>= 1) --shift_;
  }

  // Fibonacci hashing takes the HIGH bits of the product, so every coordinate reaches the
  // slot index (a plain modulo of a power of two would keep only the low bits).
  int64_t probe(uint64_t tag, const int32_t* key) const {
    const int64_t mask = static_cast<int64_t>(slots_.size()) - 1;
    for (int64_t s = static_cast<int64_t>((tag * 0x9E3779B97F4A7C15ull) >> shift_);; s = (s + 1) & mask) {
      const Slot& slot = slots_[s];
      if (slot.index < 0 || (slot.tag == tag && (bits_ > 0 || same_key(slot.index, key)))) return s;
    }
  }

  bool same_key(int32_t index, const int32_t* key) const {
    const int32_t* stored = &keys_[static_cast<size_t>(index) * d_];
    bool same = true;
    for (int i = 0; i < d_; ++i) same &= stored[i] == key[i];
    return same;
  }

  void grow() {
    reset(static_cast<int64_t>(slots_.size()) * 2);
    for (int64_t e = 0; e < size_; ++e) {
      const int32_t* key = &keys_[e * d_];
      const uint64_t tag = make_tag(key);
      slots_[probe(tag, key)] = {tag, static_cast<int32_t>(e)};
    }
  }

  static constexpr int kRecentBits = 10;
  int d_;
  int bits_;
  std::vector<Slot> recent_ = std::vector<Slot>(size_t{1} << kRecentBits);
  int64_t size_ = 0;
  int shift_ = 0;
  std::vector<Slot> slots_;
  std::vector<int32_t> keys_;
};

// Coordinate width that packs every vertex key of these features into 64 bits, or 0 when
// they do not fit. Keys stay within sum_j |f_j| s_j + d max_j |f_j| s_j of the origin (the
// elevation), plus 3 (d+1) for rounding, wrap-around and the vertex offset.
int packed_key_bits(const float* features, int64_t n, int d, const float* scale) {
  const int bits = std::min(32, 64 / d);
  std::vector<float> max_abs(d, 0.0f);
  for (int64_t i = 0; i < n; ++i)
    for (int j = 0; j < d; ++j) max_abs[j] = std::max(max_abs[j], std::fabs(features[i * d + j]));
  double sum = 0, largest = 0;
  for (int j = 0; j < d; ++j) {
    sum += max_abs[j] * scale[j];
    largest = std::max(largest, static_cast<double>(max_abs[j] * scale[j]));
  }
  const double bound = sum + d * largest + 3.0 * (d + 1) + 1.0;
  return bound < std::ldexp(1.0, bits - 1) ? bits : 0;
}

// Embeds one feature vector in the lattice (Adams et al. 2010, p.5-10): writes the
// barycentric weights (d+1) and the enclosing simplex as (rem0[0..d-1], rank[0..d-1]),
// which is all the vertex keys depend on.
template <int D>
void locate_point(const float* f, int d_runtime, const float* scale, float* weight, int32_t* simplex) {
  const int d = D > 0 ? D : d_runtime;
  float elevated[PermutohedralLattice::kMaxDim + 1];
  int32_t rem0[PermutohedralLattice::kMaxDim + 1];
  int32_t rank[PermutohedralLattice::kMaxDim + 1];
  float bary[PermutohedralLattice::kMaxDim + 2];
  // Elevate onto the hyperplane sum(x) = 0 of R^(d+1).
  float sm = 0;
  for (int j = d; j > 0; --j) {
    float cf = f[j - 1] * scale[j - 1];
    elevated[j] = sm - j * cf;
    sm += cf;
  }
  elevated[0] = sm;
  // Closest remainder-0 point by rounding each coordinate to a multiple of d+1 (ties go
  // down, as in the reference). Branch-free: the choices are data-dependent coin flips.
  const float down = 1.0f / (d + 1);
  int sum = 0;
  for (int i = 0; i <= d; ++i) {
    // floor/ceil via integer conversion: std::floor is a libm call without SSE4.1.
    const float v = down * elevated[i];
    int fl = static_cast<int>(v);
    fl -= v < static_cast<float>(fl);
    const int c = fl + (v > static_cast<float>(fl));
    const bool round_up = static_cast<float>(c * (d + 1)) - elevated[i] < elevated[i] - static_cast<float>(fl * (d + 1));
    const int k = round_up ? c : fl;
    rem0[i] = k * (d + 1);
    sum += k;
  }
  // Rank of each coordinate's residual, then fix the point back onto the plane.
  float residual[PermutohedralLattice::kMaxDim + 1];
  for (int i = 0; i <= d; ++i) {
    residual[i] = elevated[i] - rem0[i];
    rank[i] = 0;
  }
  for (int i = 0; i < d; ++i) {
    for (int j = i + 1; j <= d; ++j) {
      const int less = residual[i] < residual[j];
      rank[i] += less;
      rank[j] += 1 - less;
    }
  }
  for (int i = 0; i <= d; ++i) {
    rank[i] += sum;
    const int wrap = (rank[i] < 0) - (rank[i] > d);
    rank[i] += wrap * (d + 1);
    rem0[i] += wrap * (d + 1);
  }
  for (int i = 0; i <= d + 1; ++i) bary[i] = 0;
  for (int i = 0; i <= d; ++i) {
    float v = (elevated[i] - rem0[i]) * down;
    bary[d - rank[i]] += v;
    bary[d - rank[i] + 1] -= v;
  }
  bary[0] += 1.0f + bary[d + 1];
  for (int i = 0; i <= d; ++i) weight[i] = bary[i];
  for (int i = 0; i < d; ++i) {
    simplex[i] = rem0[i];
    simplex[d + i] = rank[i];
  }
}

// Key of the simplex vertex with the given remainder (Adams et al. 2010, "canonical simplex").
inline void vertex_key(const int32_t* simplex, int d, int remainder, int32_t* key) {
  for (int i = 0; i < d; ++i) {
    const int32_t rank = simplex[d + i];
    key[i] = simplex[i] + remainder - (rank > d - remainder ? d + 1 : 0);
  }
}

// For every axis and vertex, the slots (index + 1, 0 = none) of the two neighbours one
// lattice step away along that axis: the key moves by +d on the axis and -1 on the others
// (and the opposite for the second neighbour).
void find_blur_neighbors(const KeyTable& table, int d, int64_t m, int num_threads, int32_t* out) {
  const std::vector<int32_t>& keys = table.keys();
  parallel_for(m, kMinVertexChunk, num_threads, [&](int64_t b, int64_t e) {
    int32_t n1[PermutohedralLattice::kMaxDim], n2[PermutohedralLattice::kMaxDim];
    for (int axis = 0; axis <= d; ++axis) {
      for (int64_t j = b; j < e; ++j) {
        const int32_t* key = &keys[j * d];
        for (int k = 0; k < d; ++k) {
          n1[k] = key[k] - 1;
          n2[k] = key[k] + 1;
        }
        if (axis < d) {
          n1[axis] = key[axis] + d;
          n2[axis] = key[axis] - d;
        }
        int64_t o = (axis * m + j) * 2;
        out[o] = table.find(n1) + 1;
        out[o + 1] = table.find(n2) + 1;
      }
    }
  });
}

// Locates points [b, e) and indexes their simplex vertices in `table`: offset (index + 1)
// and weight per point and vertex. A vertex with the same key as the previous point's
// vertex of the same remainder reuses its index: neighbouring pixels share most vertices,
// and comparing d ints is cheaper than a hash probe.
template <int D>
void locate_range(const float* features, int64_t b, int64_t e, int d_runtime, const float* scale, KeyTable& table,
                  int32_t* offset, float* weight) {
  constexpr int kMax = PermutohedralLattice::kMaxDim;
  const int d = D > 0 ? D : d_runtime;
  const int vd = d + 1;
  int32_t simplex[2 * kMax], key[kMax], prev_keys[(kMax + 1) * kMax];
  for (int64_t i = b; i < e; ++i) {
    locate_point<D>(features + i * d, d, scale, weight + i * vd, simplex);
    for (int r = 0; r <= d; ++r) {
      vertex_key(simplex, d, r, key);
      int32_t* prev = prev_keys + r * d;
      bool same = i > b;
      for (int k = 0; k < d; ++k) same &= key[k] == prev[k];
      if (same) {
        offset[i * vd + r] = offset[(i - 1) * vd + r];
      } else {
        offset[i * vd + r] = table.insert(key) + 1;
        std::copy_n(key, d, prev);
      }
    }
  }
}

// Splats points [b, e) (vs channels each) into dst. VS > 0 fixes the channel count at
// compile time (the 2-label case uses 1), VS == 0 reads it from vs.
template <int VS>
void splat_range(const float* in, int vs_runtime, int vd, int64_t b, int64_t e, const int32_t* offset,
                 const float* weight, float* dst) {
  const int vs = VS > 0 ? VS : vs_runtime;
  for (int64_t i = b; i < e; ++i) {
    const float* v = in + i * vs;
    for (int r = 0; r < vd; ++r) {
      float* slot = dst + static_cast<int64_t>(offset[i * vd + r]) * vs;
      const float w = weight[i * vd + r];
      for (int k = 0; k < vs; ++k) slot[k] += w * v[k];
    }
  }
}

// Slices points [b, e) from the lattice values, scaled by alpha. Accumulates in a local
// buffer: accumulating in `out` would make every add wait on the previous store.
template <int VS>
void slice_range(const float* values, int vs_runtime, int vd, int64_t b, int64_t e, const int32_t* offset,
                 const float* weight, float alpha, float* out) {
  const int vs = VS > 0 ? VS : vs_runtime;
  float acc[VS > 0 ? VS : PermutohedralLattice::kMaxValues];
  for (int64_t i = b; i < e; ++i) {
    for (int k = 0; k < vs; ++k) acc[k] = 0.0f;
    for (int r = 0; r < vd; ++r) {
      const float* slot = values + static_cast<int64_t>(offset[i * vd + r]) * vs;
      const float w = weight[i * vd + r];
      for (int k = 0; k < vs; ++k) acc[k] += w * slot[k];
    }
    for (int k = 0; k < vs; ++k) out[i * vs + k] = alpha * acc[k];
  }
}

}  // namespace

void PermutohedralLattice::build(const float* features, int64_t n, int d, int num_threads) {
  if (d < 1 || d > kMaxDim) throw std::invalid_argument("permutohedral lattice: d must be in [1, 16]");
  n_ = n;
  d_ = d;
  prepared_vs_ = prepared_threads_ = 0;
  // Scale so that the blur's [1/2 1 1/2] passes approximate a unit-variance Gaussian
  // (Adams et al. 2010, p.6), as in the reference dense CRF code.
  float scale[kMaxDim];
  const float inv_std = std::sqrt(2.0f / 3.0f) * (d + 1);
  for (int i = 0; i < d; ++i) scale[i] = inv_std / std::sqrt(static_cast<float>((i + 1) * (i + 2)));

  const int vd = d + 1;
  weight_.resize(n * vd);
  offset_.resize(n * vd);
  // Each thread locates a contiguous range of points into its own hash table; the tables
  // are then merged into the first one and the other ranges' vertex indices remapped.
  const int chunks = static_cast<int>(std::clamp<int64_t>(n / kMinPointChunk, 1, std::max(1, num_threads)));
  const int64_t per_chunk = (n + chunks - 1) / chunks;
  std::vector<KeyTable> tables(chunks, KeyTable(d, packed_key_bits(features, n, d, scale)));
  parallel_for(chunks, 1, chunks, [&](int64_t cb, int64_t ce) {
    for (int64_t c = cb; c < ce; ++c) {
      const int64_t b = c * per_chunk, e = std::min(n, b + per_chunk);
      switch (d) {
        case 2: locate_range<2>(features, b, e, d, scale, tables[c], offset_.data(), weight_.data()); break;
        case 5: locate_range<5>(features, b, e, d, scale, tables[c], offset_.data(), weight_.data()); break;
        default: locate_range<0>(features, b, e, d, scale, tables[c], offset_.data(), weight_.data());
      }
    }
  });
  KeyTable& table = tables[0];
  for (int c = 1; c < chunks; ++c) {
    const std::vector<int32_t>& keys = tables[c].keys();
    std::vector<int32_t> remap(tables[c].size() + 1, 0);
    for (int64_t j = 0; j < tables[c].size(); ++j) remap[j + 1] = table.insert(&keys[j * d]) + 1;
    const int64_t b = c * per_chunk * vd, e = std::min(n, (c + 1) * per_chunk) * vd;
    for (int64_t j = b; j < e; ++j) offset_[j] = remap[offset_[j]];
  }
  m_ = table.size();
  neighbors_.resize(vd * m_ * 2);
  find_blur_neighbors(table, d, m_, num_threads, neighbors_.data());
}

void PermutohedralLattice::prepare(int value_size, int num_threads) {
  if (value_size < 1 || value_size > kMaxValues)
    throw std::invalid_argument("permutohedral lattice: value_size must be in [1, 256]");
  const int threads = std::max(1, num_threads);
  if (value_size == prepared_vs_ && threads == prepared_threads_) return;
  const size_t slots = static_cast<size_t>(m_ + 1) * value_size;
  values_.assign(slots, 0.0f);
  blurred_.assign(slots, 0.0f);
  splat_scratch_.assign(threads - 1, std::vector<float>(slots, 0.0f));
  prepared_vs_ = value_size;
  prepared_threads_ = threads;
}

void PermutohedralLattice::filter(const float* in, float* out, int value_size, int num_threads) {
  const int threads = std::max(1, num_threads);
  if (value_size != prepared_vs_ || threads > prepared_threads_)
    throw std::logic_error("PermutohedralLattice::filter: call prepare() for this value size first");
  splat(in, value_size, threads);
  blur(value_size, threads);
  slice(out, value_size, threads);
}

void PermutohedralLattice::splat(const float* in, int vs, int num_threads) {
  const int vd = d_ + 1;
  // One contiguous point range per thread, each into its own buffer (no write conflicts).
  const int chunks = static_cast<int>(std::clamp<int64_t>(n_ / kMinPointChunk, 1, num_threads));
  const int64_t per_chunk = (n_ + chunks - 1) / chunks;
  parallel_for(chunks, 1, chunks, [&](int64_t cb, int64_t ce) {
    for (int64_t c = cb; c < ce; ++c) {
      float* dst = c == 0 ? values_.data() : splat_scratch_[c - 1].data();
      std::fill_n(dst, (m_ + 1) * vs, 0.0f);
      const int64_t b = c * per_chunk, e = std::min(n_, b + per_chunk);
      if (vs == 1) splat_range<1>(in, vs, vd, b, e, offset_.data(), weight_.data(), dst);
      else splat_range<0>(in, vs, vd, b, e, offset_.data(), weight_.data(), dst);
    }
  });
  if (chunks == 1) return;
  parallel_for((m_ + 1) * vs, kMinVertexChunk, num_threads, [&](int64_t b, int64_t e) {
    for (int c = 1; c < chunks; ++c) {
      const float* src = splat_scratch_[c - 1].data();
      for (int64_t j = b; j < e; ++j) values_[j] += src[j];
    }
  });
}

void PermutohedralLattice::blur(int vs, int num_threads) {
  for (int axis = 0; axis <= d_; ++axis) {
    const int32_t* nb = &neighbors_[static_cast<size_t>(axis) * m_ * 2];
    const float* src = values_.data();
    float* dst = blurred_.data();
    parallel_for(m_, kMinVertexChunk, num_threads, [&](int64_t b, int64_t e) {
      for (int64_t j = b; j < e; ++j) {
        const float* self = src + (j + 1) * vs;
        const float* n1 = src + static_cast<int64_t>(nb[2 * j]) * vs;
        const float* n2 = src + static_cast<int64_t>(nb[2 * j + 1]) * vs;
        float* o = dst + (j + 1) * vs;
        for (int k = 0; k < vs; ++k) o[k] = self[k] + 0.5f * (n1[k] + n2[k]);
      }
    });
    values_.swap(blurred_);
  }
}

void PermutohedralLattice::slice(float* out, int vs, int num_threads) {
  const int vd = d_ + 1;
  // Compensates the blur's gain so a constant signal keeps its scale (as in the reference).
  const float alpha = 1.0f / (1.0f + std::pow(2.0f, -static_cast<float>(d_)));
  parallel_for(n_, kMinPointChunk, num_threads, [&](int64_t b, int64_t e) {
    if (vs == 1) slice_range<1>(values_.data(), vs, vd, b, e, offset_.data(), weight_.data(), alpha, out);
    else slice_range<0>(values_.data(), vs, vd, b, e, offset_.data(), weight_.data(), alpha, out);
  });
}

}  // namespace ivos
