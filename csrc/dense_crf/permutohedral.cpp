#include "dense_crf/permutohedral.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "common/parallel.h"
#include "common/simd.h"
#include "common/stopwatch.h"

namespace ivos {
namespace {

// Points per parallel chunk: below this, thread start-up costs more than the work.
constexpr int64_t kMinPointChunk = 16384;
constexpr int64_t kMinVertexChunk = 8192;
// Vertices per parallel chunk of one blur axis: an axis of a 20k-vertex lattice takes ~20 us,
// less than waking and joining a second thread.
constexpr int64_t kMinBlurChunk = 32768;

// Number of hash slots for about `expected` entries at load factor <= 1/2 (a power of two).
int64_t table_capacity(int64_t expected) {
  int64_t cap = 4096;
  while (cap < 2 * expected) cap *= 2;
  return cap;
}

// Fibonacci hashing: the HIGH bits of the product depend on every bit of the tag (a plain
// modulo of a power of two would keep only the low bits).
inline uint64_t mix(uint64_t tag) { return tag * 0x9E3779B97F4A7C15ull; }

// Vertex keys (d int32 coordinates; the (d+1)-th is implied: they sum to 0) packed into one
// 64-bit tag, coordinate i + bias in its own `bits`-bit field. Valid when every coordinate
// of every vertex AND of its blur neighbours lies in (-2^(bits-1), 2^(bits-1)) (checked by
// packed_key_bits), so no field carries into the next: then tags add like the keys, which
// lets locate and blur derive every key they need from another with one add, and no tag is
// 0 (every field is >= 1).
struct KeyPacking {
  uint64_t bias = 0;                              // tag of the all-zero key
  uint64_t ones = 0;                              // tag increment of +1 on every coordinate
  uint64_t unit[PermutohedralLattice::kMaxDim + 1] = {};  // +1 on coordinate i (0 for i = d)
  uint64_t step[PermutohedralLattice::kMaxDim + 1] = {};  // (d+1) * unit[i]

  KeyPacking(int d, int bits) {
    for (int i = 0; i < d; ++i) {
      unit[i] = uint64_t{1} << (bits * (d - 1 - i));
      step[i] = (d + 1) * unit[i];
      ones += unit[i];
      bias += (uint64_t{1} << (bits - 1)) * unit[i];
    }
  }
};

// Open-addressing hash table from packed tags to dense vertex indices, with a small
// direct-mapped cache of recent vertices in front (it stays in L1: consecutive pixels keep
// touching the same few vertices). Grows by doubling during the build only. The probed tags
// and the indices are separate arrays: probing touches 8 bytes per slot, so the table of an
// image's lattice (64k slots) stays in a 1 MB L2 (the blur-neighbour search probes it ~12
// times per vertex, mostly missing).
class TagTable {
 public:
  explicit TagTable(int64_t expected) { reset(table_capacity(expected)); }

  // Index of the vertex with this tag, inserting it if absent.
  int32_t insert(uint64_t tag) {
    Recent& cached = recent_[mix(tag) >> (64 - kRecentBits)];
    if (cached.tag == tag) return cached.index;
    if (2 * (size() + 1) > static_cast<int64_t>(slot_tag_.size())) grow();
    const int64_t s = probe(tag);
    if (slot_tag_[s] == 0) {
      slot_tag_[s] = tag;
      slot_index_[s] = static_cast<int32_t>(size());
      tags_.push_back(tag);
    }
    cached = {tag, slot_index_[s]};
    return cached.index;
  }

  // Index of tag, or -1 when absent. Read-only: safe to call from several threads.
  int32_t find(uint64_t tag) const {
    const int64_t s = probe(tag);
    return slot_tag_[s] == 0 ? -1 : slot_index_[s];
  }

  int64_t size() const { return static_cast<int64_t>(tags_.size()); }
  const std::vector<uint64_t>& tags() const { return tags_; }

 private:
  struct Recent {
    uint64_t tag = 0;  // 0: empty (no vertex has tag 0)
    int32_t index = -1;
  };

  void reset(int64_t cap) {
    slot_tag_.assign(cap, 0);
    slot_index_.resize(cap);
    shift_ = 64;
    for (int64_t c = cap; c > 1; c >>= 1) --shift_;
  }

  int64_t probe(uint64_t tag) const {
    const int64_t mask = static_cast<int64_t>(slot_tag_.size()) - 1;
    for (int64_t s = static_cast<int64_t>(mix(tag) >> shift_);; s = (s + 1) & mask) {
      if (slot_tag_[s] == tag || slot_tag_[s] == 0) return s;
    }
  }

  void grow() {
    reset(static_cast<int64_t>(slot_tag_.size()) * 2);
    for (int64_t e = 0; e < size(); ++e) {
      const int64_t s = probe(tags_[e]);
      slot_tag_[s] = tags_[e];
      slot_index_[s] = static_cast<int32_t>(e);
    }
  }

  static constexpr int kRecentBits = 10;
  std::vector<Recent> recent_ = std::vector<Recent>(size_t{1} << kRecentBits);
  int shift_ = 0;
  std::vector<uint64_t> slot_tag_;    // 0: empty slot
  std::vector<int32_t> slot_index_;  // vertex index of the slot's tag
  std::vector<uint64_t> tags_;        // by vertex index
};

// The general case, for features too spread out to pack: a hash table from explicit keys
// (d int32 each) to dense vertex indices; equal hashes are confirmed against the stored key.
class KeyTable {
 public:
  KeyTable(int d, int64_t expected) : d_(d) { reset(table_capacity(expected)); }

  // Index of key, inserting it if absent.
  int32_t insert(const int32_t* key) {
    if (2 * (size_ + 1) > static_cast<int64_t>(slots_.size())) grow();
    const uint64_t hash = hash_of(key);
    Slot& slot = slots_[probe(hash, key)];
    if (slot.index < 0) {
      slot = {hash, static_cast<int32_t>(size_++)};
      keys_.insert(keys_.end(), key, key + d_);
    }
    return slot.index;
  }

  // Index of key, or -1 when absent. Read-only: safe to call from several threads.
  int32_t find(const int32_t* key) const { return slots_[probe(hash_of(key), key)].index; }

  int64_t size() const { return size_; }
  const std::vector<int32_t>& keys() const { return keys_; }

 private:
  struct Slot {
    uint64_t hash = 0;
    int32_t index = -1;
  };

  uint64_t hash_of(const int32_t* key) const {
    uint64_t t = 0;
    for (int i = 0; i < d_; ++i) t = mix(t + static_cast<uint32_t>(key[i]));
    return t;
  }

  void reset(int64_t cap) {
    slots_.assign(cap, Slot{});
    shift_ = 64;
    for (int64_t c = cap; c > 1; c >>= 1) --shift_;
  }

  int64_t probe(uint64_t hash, const int32_t* key) const {
    const int64_t mask = static_cast<int64_t>(slots_.size()) - 1;
    for (int64_t s = static_cast<int64_t>(mix(hash) >> shift_);; s = (s + 1) & mask) {
      const Slot& slot = slots_[s];
      if (slot.index < 0 || (slot.hash == hash && same_key(slot.index, key))) return s;
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
      slots_[probe(hash_of(key), key)] = {hash_of(key), static_cast<int32_t>(e)};
    }
  }

  int d_;
  int64_t size_ = 0;
  int shift_ = 0;
  std::vector<Slot> slots_;
  std::vector<int32_t> keys_;
};

// Points per locate_block() call: the per-point steps run as loops over a block of points,
// which the compiler vectorises (a single point's d+1 = 6 coordinates do not fill SIMD
// registers, and its data-dependent choices would be branches).
constexpr int kBlock = 64;

// The features of an image's pixels, where the build reads them from: (x, y) / sxy, and with
// colours also rgb / srgb (x the column, y the row), made on the fly. Each is the one
// division a feature array would hold, looked up in tables per column, per row and per
// intensity, so the floats are the same and no pixel-sized feature array is written and read
// back. fill(i0, count, f) writes the features of points [i0, i0 + count) (count <= kBlock)
// coordinate-major, f[k * kBlock + j], and zeros for j >= count (locate_block's loops run over
// whole blocks); max_abs(out, threads) writes the largest |feature| of each dimension.
class PixelFeatures {
 public:
  // rgb: height x width x 3, or null for positions only.
  PixelFeatures(const uint8_t* rgb, int64_t height, int64_t width, float sxy, float srgb)
      : rgb_(rgb), height_(height), width_(width), x_(width), y_(height) {
    for (int64_t x = 0; x < width; ++x) x_[x] = static_cast<float>(x) / sxy;
    for (int64_t y = 0; y < height; ++y) y_[y] = static_cast<float>(y) / sxy;
    for (int c = 0; c < 256; ++c) colour_[c] = static_cast<float>(c) / srgb;
  }

  int dim() const { return rgb_ ? 5 : 2; }

  void fill(int64_t i0, int count, float* f) const {
    std::fill_n(f, dim() * kBlock, 0.0f);
    int64_t y = i0 / width_, x = i0 - y * width_;
    for (int j = 0; j < count; ++j) {
      f[j] = x_[x];
      f[kBlock + j] = y_[y];
      if (++x == width_) {
        x = 0;
        ++y;
      }
    }
    if (rgb_ == nullptr) return;
    const uint8_t* c = rgb_ + i0 * 3;
    for (int j = 0; j < count; ++j)
      for (int k = 0; k < 3; ++k) f[(2 + k) * kBlock + j] = colour_[c[j * 3 + k]];
  }

  void max_abs(float* out, int num_threads) const {
    out[0] = x_[width_ - 1];
    out[1] = y_[height_ - 1];
    if (rgb_ == nullptr) return;
    // The brightest value per channel, 16 pixels (48 bytes) at a time so the loop vectorises.
    constexpr int kGroup = 16;
    const int64_t n = height_ * width_, groups = n / kGroup;
    const int chunks = static_cast<int>(std::clamp<int64_t>(n / kMinPointChunk, 1, std::max(1, num_threads)));
    std::vector<uint8_t> partial(static_cast<size_t>(chunks) * kGroup * 3, 0);
    parallel_for(chunks, 1, chunks, [&](int64_t cb, int64_t ce) {
      for (int64_t c = cb; c < ce; ++c) {
        uint8_t* acc = &partial[c * kGroup * 3];
        for (int64_t g = groups * c / chunks; g < groups * (c + 1) / chunks; ++g) {
          const uint8_t* p = rgb_ + g * kGroup * 3;
          for (int q = 0; q < kGroup * 3; ++q) acc[q] = std::max(acc[q], p[q]);
        }
      }
    });
    uint8_t brightest[3] = {0, 0, 0};
    for (size_t q = 0; q < partial.size(); ++q) brightest[q % 3] = std::max(brightest[q % 3], partial[q]);
    for (int64_t i = groups * kGroup; i < n; ++i)
      for (int k = 0; k < 3; ++k) brightest[k] = std::max(brightest[k], rgb_[i * 3 + k]);
    for (int k = 0; k < 3; ++k) out[2 + k] = colour_[brightest[k]];
  }

 private:
  const uint8_t* rgb_;
  int64_t height_, width_;
  std::vector<float> x_, y_;
  float colour_[256];
};

// Coordinate width that packs every vertex key of features with these largest |values| per
// dimension, and its blur neighbours', into 64 bits, or 0 when they do not fit. Keys stay
// within sum_j |f_j| s_j + d max_j |f_j| s_j of the origin (the elevation), plus 4 (d+1) for
// rounding, wrap-around, the vertex offset and the blur neighbour.
int packed_key_bits(const float* max_abs, int d, const float* scale) {
  const int bits = std::min(32, 64 / d);
  double sum = 0, largest = 0;
  for (int j = 0; j < d; ++j) {
    sum += max_abs[j] * scale[j];
    largest = std::max(largest, static_cast<double>(max_abs[j] * scale[j]));
  }
  const double bound = sum + d * largest + 4.0 * (d + 1) + 1.0;
  return bound < std::ldexp(1.0, bits - 1) ? bits : 0;
}

// Embeds points [0, count) (count <= kBlock; f: their features, coordinate-major as
// written by a feature source's fill, zeros past count) in the lattice
// (Adams et al. 2010, p.5-10): writes their barycentric weights (count x (d+1)) and their
// enclosing simplices as the remainder-0 point rem0 and the rank of each coordinate's
// residual, coordinate-major: rem0[k * kBlock + j] for coordinate k of point j. That is all
// the vertex keys depend on.
template <int D>
IVOS_AVX2_CLONES void locate_block(const float* f, int count, int d_runtime, const float* scale, float* weight,
                                   int32_t* rem0, int32_t* rank) {
  constexpr int kMax = PermutohedralLattice::kMaxDim;
  const int d = D > 0 ? D : d_runtime;
  const float down = 1.0f / (d + 1);
  // Every loop below runs over the whole block (points past count are zeros and their
  // results are dropped): a fixed trip count is what lets GCC vectorise all of them.
  float elevated[(kMax + 1) * kBlock], sm[kBlock] = {};
  int32_t sum[kBlock] = {};
  // Elevate onto the hyperplane sum(x) = 0 of R^(d+1).
  for (int k = d; k > 0; --k) {
    float* el = elevated + k * kBlock;
    const float* fk = f + (k - 1) * kBlock;
    for (int j = 0; j < kBlock; ++j) {
      const float cf = fk[j] * scale[k - 1];
      el[j] = sm[j] - k * cf;
      sm[j] += cf;
    }
  }
  std::copy_n(sm, kBlock, elevated);
  // Closest remainder-0 point by rounding each coordinate to a multiple of d+1 (ties go
  // down, as in the reference); floor/ceil via integer conversion (std::floor is a libm
  // call without SSE4.1).
  for (int k = 0; k <= d; ++k) {
    const float* el = elevated + k * kBlock;
    int32_t* r0 = rem0 + k * kBlock;
    for (int j = 0; j < kBlock; ++j) {
      const float v = down * el[j];
      int fl = static_cast<int>(v);
      fl -= v < static_cast<float>(fl);
      const int c = fl + (v > static_cast<float>(fl));
      const bool round_up = static_cast<float>(c * (d + 1)) - el[j] < el[j] - static_cast<float>(fl * (d + 1));
      const int kk = round_up ? c : fl;
      r0[j] = kk * (d + 1);
      sum[j] += kk;
    }
  }
  // Rank of each coordinate's residual, then fix the point back onto the plane.
  for (int k = 0; k <= d; ++k) std::fill_n(rank + k * kBlock, kBlock, 0);
  for (int a = 0; a < d; ++a) {
    for (int b = a + 1; b <= d; ++b) {
      const float *ea = elevated + a * kBlock, *eb = elevated + b * kBlock;
      const int32_t *ra = rem0 + a * kBlock, *rb = rem0 + b * kBlock;
      int32_t *rka = rank + a * kBlock, *rkb = rank + b * kBlock;
      for (int j = 0; j < kBlock; ++j) {
        const int less = ea[j] - ra[j] < eb[j] - rb[j];
        rka[j] += less;
        rkb[j] += 1 - less;
      }
    }
  }
  for (int k = 0; k <= d; ++k) {
    int32_t *rk = rank + k * kBlock, *r0 = rem0 + k * kBlock;
    for (int j = 0; j < kBlock; ++j) {
      const int r = rk[j] + sum[j];
      const int wrap = (r < 0) - (r > d);
      rk[j] = r + wrap * (d + 1);
      r0[j] += wrap * (d + 1);
    }
  }
  // Barycentric weights: with u[s] the scaled residual of the coordinate of rank s,
  // w[0] = u[d] + 1 - u[0] and w[r] = u[d-r] - u[d-r+1] (the reference accumulates the same
  // terms through scattered adds, giving the same floats). The ranks are a permutation, so
  // u[s] is picked with integer masks on the floats' bits (GCC turns float selects into
  // branches, which do not vectorise).
  uint32_t res_bits[(kMax + 1) * kBlock], u_bits[(kMax + 1) * kBlock] = {};
  for (int k = 0; k <= d; ++k) {
    const float* el = elevated + k * kBlock;
    const int32_t* r0 = rem0 + k * kBlock;
    float res[kBlock];
    for (int j = 0; j < kBlock; ++j) res[j] = (el[j] - r0[j]) * down;
    std::memcpy(res_bits + k * kBlock, res, sizeof(res));
  }
  for (int s = 0; s <= d; ++s) {
    uint32_t* us = u_bits + s * kBlock;
    for (int k = 0; k <= d; ++k) {
      const uint32_t* rb = res_bits + k * kBlock;
      const int32_t* rk = rank + k * kBlock;
      for (int j = 0; j < kBlock; ++j) us[j] |= rb[j] & (0u - static_cast<uint32_t>(rk[j] == s));
    }
  }
  float u[(kMax + 1) * kBlock];
  std::memcpy(u, u_bits, sizeof(float) * (d + 1) * kBlock);
  const int vd = d + 1;
  for (int j = 0; j < count; ++j) weight[j * vd] = u[d * kBlock + j] + (1.0f - u[j]);
  for (int r = 1; r <= d; ++r) {
    const float *hi = u + (d - r) * kBlock, *lo = u + (d - r + 1) * kBlock;
    for (int j = 0; j < count; ++j) weight[j * vd + r] = hi[j] - lo[j];
  }
}

// Locates points [b, e) and indexes their simplex vertices in `table`: offset (index + 1)
// and weight per point and vertex. The vertex with remainder r has the key
// rem0 + r - (d+1) [rank > d - r] (Adams et al. 2010, "canonical simplex"), so going from r-1
// to r adds 1 to every coordinate and subtracts d+1 from the one of rank d - r + 1: one add
// on the packed tag. A vertex with the same tag as the previous point's vertex of the same
// remainder reuses its index (neighbouring pixels share many vertices).
template <int D>
void locate_range_packed(const PixelFeatures& features, int64_t b, int64_t e, const float* scale,
                         const KeyPacking& packing, TagTable& table, int32_t* offset, float* weight) {
  constexpr int kMax = PermutohedralLattice::kMaxDim;
  constexpr int d = D, vd = D + 1;
  float f[kMax * kBlock];
  int32_t rem0[(kMax + 1) * kBlock], rank[(kMax + 1) * kBlock], by_rank[kMax + 1], prev_index[kMax + 1];
  uint64_t prev_tag[kMax + 1] = {};  // 0: no vertex
  for (int64_t i0 = b; i0 < e; i0 += kBlock) {
    const int count = static_cast<int>(std::min<int64_t>(kBlock, e - i0));
    features.fill(i0, count, f);
    locate_block<D>(f, count, d, scale, weight + i0 * vd, rem0, rank);
    for (int j = 0; j < count; ++j) {
      uint64_t tag = packing.bias;
      for (int k = 0; k < d; ++k) tag += static_cast<uint64_t>(static_cast<int64_t>(rem0[k * kBlock + j])) * packing.unit[k];
      for (int k = 0; k <= d; ++k) by_rank[rank[k * kBlock + j]] = k;
      int32_t* out = offset + (i0 + j) * vd;
      for (int r = 0; r <= d; ++r) {
        if (r > 0) tag += packing.ones - packing.step[by_rank[d - r + 1]];
        if (tag != prev_tag[r]) {
          prev_tag[r] = tag;
          prev_index[r] = table.insert(tag) + 1;
        }
        out[r] = prev_index[r];
      }
    }
  }
}

// locate_range_packed for d = D small enough to index subsets (the appearance kernel's 5):
// the vertex with remainder r is rem0 + r - (d+1) on the coordinates ranked above d - r, so
// it is fixed by rem0 and that SUBSET of the d+1 coordinates. Each distinct rem0 gets a block
// of 2^(d+1) slots, one per subset (bit mask), remembering the vertex index found there: a
// point costs one hash lookup (its rem0, usually the previous point's) and d+1 reads of a
// small block, and the vertex table is consulted once per (rem0, subset) only. (Going
// through the vertex table for each of the d+1 vertices made the build 1.3x slower: most of
// its time went to mispredicted branches and cache misses of those lookups.)
template <int D>
IVOS_AVX2_CLONES void locate_range_subsets(const PixelFeatures& features, int64_t b, int64_t e, const float* scale,
                                           const KeyPacking& packing, TagTable& table, int32_t* offset,
                                           float* weight) {
  constexpr int d = D, vd = D + 1, kSubsets = 1 << vd;
  float f[d * kBlock];
  int32_t rem0[vd * kBlock], rank[vd * kBlock], subset[vd * kBlock];
  TagTable blocks_of_rem0((e - b) / 64);    // rem0 tag -> block number
  std::vector<int32_t> slots;                // block * kSubsets + subset -> vertex index + 1, 0: not known yet
  for (int64_t i0 = b; i0 < e; i0 += kBlock) {
    const int count = static_cast<int>(std::min<int64_t>(kBlock, e - i0));
    features.fill(i0, count, f);
    locate_block<D>(f, count, d, scale, weight + i0 * vd, rem0, rank);
    // subset[r * kBlock + j]: bit k set when coordinate k of point j ranks above d - r.
    // ((d - r - rank) >> 31) is all ones when rank > d - r (an integer compare would not vectorise).
    for (int r = 0; r <= d; ++r) {
      for (int j = 0; j < kBlock; ++j) {
        int32_t bits = 0;
        for (int k = 0; k <= d; ++k) bits |= (1 << k) & ((d - r - rank[k * kBlock + j]) >> 31);
        subset[r * kBlock + j] = bits;
      }
    }
    for (int j = 0; j < count; ++j) {
      uint64_t tag = packing.bias;
      for (int k = 0; k < d; ++k) tag += static_cast<uint64_t>(static_cast<int64_t>(rem0[k * kBlock + j])) * packing.unit[k];
      // No "same rem0 as the previous point?" branch first: it goes either way (rem0 changes
      // at ~60% of the points), while the table's recent-vertex cache almost always hits.
      const size_t number = static_cast<size_t>(blocks_of_rem0.insert(tag));
      if ((number + 1) * kSubsets > slots.size()) slots.resize((number + 1) * kSubsets, 0);
      int32_t* block = slots.data() + number * kSubsets;
      int32_t* out = offset + (i0 + j) * vd;
      for (int r = 0; r <= d; ++r) {
        const int32_t s = subset[r * kBlock + j];
        int32_t index = block[s];
        if (index == 0) {  // first time this vertex is reached from this rem0
          uint64_t vertex = tag + static_cast<uint64_t>(r) * packing.ones;
          for (int k = 0; k < d; ++k) vertex -= (s >> k & 1) ? packing.step[k] : 0;
          index = block[s] = table.insert(vertex) + 1;
        }
        out[r] = index;
      }
    }
  }
}

// locate_range_packed for keys that do not pack: each vertex key is spelled out.
void locate_range_keys(const PixelFeatures& features, int64_t b, int64_t e, int d, const float* scale, KeyTable& table,
                       int32_t* offset, float* weight) {
  constexpr int kMax = PermutohedralLattice::kMaxDim;
  const int vd = d + 1;
  float f[kMax * kBlock];
  int32_t rem0[(kMax + 1) * kBlock], rank[(kMax + 1) * kBlock], key[kMax];
  for (int64_t i0 = b; i0 < e; i0 += kBlock) {
    const int count = static_cast<int>(std::min<int64_t>(kBlock, e - i0));
    features.fill(i0, count, f);
    locate_block<0>(f, count, d, scale, weight + i0 * vd, rem0, rank);
    for (int j = 0; j < count; ++j) {
      for (int r = 0; r <= d; ++r) {
        for (int k = 0; k < d; ++k)
          key[k] = rem0[k * kBlock + j] + r - (rank[k * kBlock + j] > d - r ? d + 1 : 0);
        offset[(i0 + j) * vd + r] = table.insert(key) + 1;
      }
    }
  }
}

// For every axis and vertex, the slots (index + 1, 0 = none) of the two neighbours one
// lattice step away along that axis: the key moves by +d on the axis and -1 on the others
// (and the opposite for the second neighbour). Only the first is looked up: when u is v's
// first neighbour, v is u's second, so each hit fills both (half the hash lookups; each
// second-neighbour entry has a single possible writer, so threads never write the same one).
void find_blur_neighbors(const TagTable& table, const KeyPacking& packing, int d, int num_threads, int32_t* out) {
  const std::vector<uint64_t>& tags = table.tags();
  const int64_t m = table.size();
  std::fill_n(out, (d + 1) * m * 2, 0);
  parallel_for(m, kMinVertexChunk / 2, num_threads, [&](int64_t b, int64_t e) {
    for (int axis = 0; axis <= d; ++axis) {
      const uint64_t plus = packing.step[axis] - packing.ones;  // +d on the axis, -1 elsewhere
      int32_t* axis_out = out + axis * m * 2;
      for (int64_t j = b; j < e; ++j) {
        const int32_t u = table.find(tags[j] + plus);
        axis_out[j * 2] = u + 1;
        if (u >= 0) axis_out[static_cast<int64_t>(u) * 2 + 1] = static_cast<int32_t>(j) + 1;
      }
    }
  });
}

void find_blur_neighbors(const KeyTable& table, int d, int num_threads, int32_t* out) {
  const std::vector<int32_t>& keys = table.keys();
  const int64_t m = table.size();
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
        const int64_t o = (axis * m + j) * 2;
        out[o] = table.find(n1) + 1;
        out[o + 1] = table.find(n2) + 1;
      }
    }
  });
}

// Each thread locates a contiguous range of points into its own table (Table: TagTable or
// KeyTable, located by locate(table, b, e)); the tables are then merged into the first one.
// Returns the merged table; remaps[c] maps chunk c's local slots to the merged table's
// (empty for chunk 0, whose slots are already the merged ones). The offsets stay local until
// the caller applies the remaps.
template <typename Table, typename Locate, typename Reinsert>
Table locate_all(int num_threads, std::vector<Table> tables, Locate locate, Reinsert reinsert,
                 const std::vector<int64_t>& chunk_begin, std::vector<std::vector<int32_t>>& remaps) {
  const int chunks = static_cast<int>(tables.size());
  parallel_for(chunks, 1, std::min(chunks, num_threads), [&](int64_t cb, int64_t ce) {
    for (int64_t c = cb; c < ce; ++c) locate(tables[c], chunk_begin[c], chunk_begin[c + 1]);
  });
  Table& table = tables[0];
  remaps.assign(chunks, {});
  for (int c = 1; c < chunks; ++c) {
    remaps[c].assign(tables[c].size() + 1, 0);
    for (int64_t j = 0; j < tables[c].size(); ++j) remaps[c][j + 1] = reinsert(table, tables[c], j) + 1;
  }
  return std::move(table);
}

// Splats points [b, e) (vs channels each) into dst. VD/VS > 0 fix the vertices per point
// and the channel count at compile time (d = 2 and 5; the 2-label case uses 1 channel),
// 0 reads them from vd/vs. kOnes: every value is 1 (one channel; `in` is not read).
template <int VD, int VS, bool kOnes = false, typename Index>
void splat_range(const float* in, int vd_runtime, int vs_runtime, int64_t b, int64_t e, const Index* offset,
                 const float* weight, float* dst) {
  const int vd = VD > 0 ? VD : vd_runtime, vs = VS > 0 ? VS : vs_runtime;
  for (int64_t i = b; i < e; ++i) {
    for (int r = 0; r < vd; ++r) {
      float* slot = dst + static_cast<int64_t>(offset[i * vd + r]) * vs;
      const float w = weight[i * vd + r];
      if constexpr (kOnes) {
        slot[0] += w;
      } else {
        const float* v = in + i * vs;
        for (int k = 0; k < vs; ++k) slot[k] += w * v[k];
      }
    }
  }
}

// Slices points [b, e) from the lattice values, scaled by alpha. Accumulates in a local
// buffer: accumulating in `out` would make every add wait on the previous store.
template <int VD, int VS, typename Index>
void slice_range(const float* values, int vd_runtime, int vs_runtime, int64_t b, int64_t e, const Index* offset,
                 const float* weight, float alpha, float* out) {
  const int vd = VD > 0 ? VD : vd_runtime, vs = VS > 0 ? VS : vs_runtime;
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

// Calls fn with std::integral_constant<int, VD>{} for the vertex counts of d = 2 and d = 5
// (the dense CRF's kernels) and 0 (read at run time) otherwise.
template <typename Fn>
void with_vertex_count(int vd, Fn&& fn) {
  switch (vd) {
    case 3: fn(std::integral_constant<int, 3>{}); break;
    case 6: fn(std::integral_constant<int, 6>{}); break;
    default: fn(std::integral_constant<int, 0>{});
  }
}

void grow_to(std::vector<float>& v, size_t size) {
  if (v.size() < size) v.resize(size);
}

}  // namespace

void PermutohedralLattice::build_pixels(const uint8_t* rgb, int64_t height, int64_t width, float sxy, float srgb,
                                        int num_threads) {
  const PixelFeatures features(rgb, height, width, sxy, srgb);
  const int64_t n = height * width;
  const int d = features.dim();
  n_ = n;
  d_ = d;
  // Scale so that the blur's [1/2 1 1/2] passes approximate a unit-variance Gaussian
  // (Adams et al. 2010, p.6), as in the reference dense CRF code.
  float scale[kMaxDim];
  const float inv_std = std::sqrt(2.0f / 3.0f) * (d + 1);
  for (int i = 0; i < d; ++i) scale[i] = inv_std / std::sqrt(static_cast<float>((i + 1) * (i + 2)));

  const int vd = d + 1;
  weight_.resize(n * vd);
  offset_.resize(n * vd);
  const int chunks = static_cast<int>(std::clamp<int64_t>(n / kMinPointChunk, 1, std::max(1, num_threads)));
  std::vector<int64_t> chunk_begin(chunks + 1);
  for (int c = 0; c <= chunks; ++c) chunk_begin[c] = n * c / chunks;
  std::vector<std::vector<int32_t>> remaps;
  // A guess of the vertex count per chunk (a few % of the points for images) sizes the
  // tables so they rarely grow.
  const int64_t expected = n / chunks / 16;
  float* w = weight_.data();
  int32_t* o = offset_.data();
  float max_abs[kMaxDim];
  features.max_abs(max_abs, num_threads);
  if (const int bits = packed_key_bits(max_abs, d, scale)) {
    const KeyPacking packing(d, bits);
    TagTable table = locate_all(
        num_threads, std::vector<TagTable>(chunks, TagTable(expected)),
        [&](TagTable& t, int64_t b, int64_t e) {
          if (d == 5) locate_range_subsets<5>(features, b, e, scale, packing, t, o, w);
          else locate_range_packed<2>(features, b, e, scale, packing, t, o, w);  // positions only
        },
        [](TagTable& into, const TagTable& from, int64_t j) { return into.insert(from.tags()[j]); }, chunk_begin,
        remaps);
    m_ = table.size();
    neighbors_.resize(vd * m_ * 2);
    find_blur_neighbors(table, packing, d, num_threads, neighbors_.data());
  } else {
    KeyTable table = locate_all(
        num_threads, std::vector<KeyTable>(chunks, KeyTable(d, expected)),
        [&](KeyTable& t, int64_t b, int64_t e) { locate_range_keys(features, b, e, d, scale, t, o, w); },
        [d](KeyTable& into, const KeyTable& from, int64_t j) { return into.insert(&from.keys()[j * d]); },
        chunk_begin, remaps);
    m_ = table.size();
    neighbors_.resize(vd * m_ * 2);
    find_blur_neighbors(table, d, num_threads, neighbors_.data());
  }
  // The chunks' local slots through their remaps, in 16 bits when every slot fits (one pass).
  narrow_ = value_slots() <= 65536;
  if (narrow_) offset16_.resize(n * vd);
  parallel_for(chunks, 1, num_threads, [&](int64_t cb, int64_t ce) {
    for (int64_t c = cb; c < ce; ++c) {
      const int64_t b = chunk_begin[c] * vd, e = chunk_begin[c + 1] * vd;
      const int32_t* remap = remaps[c].empty() ? nullptr : remaps[c].data();
      if (narrow_ && remap) {
        for (int64_t j = b; j < e; ++j) offset16_[j] = static_cast<uint16_t>(remap[o[j]]);
      } else if (narrow_) {
        for (int64_t j = b; j < e; ++j) offset16_[j] = static_cast<uint16_t>(o[j]);
      } else if (remap) {
        for (int64_t j = b; j < e; ++j) o[j] = remap[o[j]];
      }
    }
  });
  if (narrow_) offset_.clear();  // keeps its capacity for the next build (see release_build_scratch)
}

void PermutohedralLattice::release_build_scratch() {
  if (narrow_) std::vector<int32_t>().swap(offset_);
}

void PermutohedralLattice::normalize(int num_threads, Workspace& ws) {
  // filter() of ones without materialising them or the result: the splat adds the weights
  // themselves, and each point's weights are scaled as soon as its sum is sliced (the same
  // float operations as filter(), so the same weights).
  const int threads = std::max(1, num_threads);
  splat(nullptr, 1, threads, ws);
  blur(ws.values, ws.blurred, 1, threads);
  const float alpha = slice_scale();
  const float* values = ws.values.data();
  parallel_for(n_, kMinPointChunk, threads, [&](int64_t b, int64_t e) {
    with_vertex_count(d_ + 1, [&](auto VD) {
      const int vd = VD > 0 ? VD : d_ + 1;
      with_offsets([&](const auto* offsets) {
        for (int64_t i = b; i < e; ++i) {
          float* w = &weight_[i * vd];
          const auto* o = &offsets[i * vd];
          float acc = 0.0f;
          for (int r = 0; r < vd; ++r) acc += w[r] * values[o[r]];
          const float s = 1.0f / std::sqrt(alpha * acc + 1e-20f);
          for (int r = 0; r < vd; ++r) w[r] *= s;
        }
      });
    });
  });
}

size_t PermutohedralLattice::memory_bytes() const {
  return offset_.capacity() * sizeof(int32_t) + offset16_.capacity() * sizeof(uint16_t) +
         weight_.capacity() * sizeof(float) + neighbors_.capacity() * sizeof(int32_t);
}

void PermutohedralLattice::filter(const float* in, float* out, int value_size, int num_threads,
                                  Workspace& ws) const {
  if (value_size < 1 || value_size > kMaxValues)
    throw std::invalid_argument("permutohedral lattice: value_size must be in [1, 256]");
  const int threads = std::max(1, num_threads);
  Stopwatch clock(ws.splat_ms != nullptr);
  splat(in, value_size, threads, ws);
  clock.lap(ws.splat_ms);
  blur(ws.values, ws.blurred, value_size, threads);
  clock.lap(ws.blur_ms);
  slice(out, value_size, threads, ws);
  clock.lap(ws.slice_ms);
}

void PermutohedralLattice::splat(const float* in, int vs, int num_threads, Workspace& ws) const {
  const int vd = d_ + 1;
  const size_t slots = static_cast<size_t>(m_ + 1) * vs;
  // One contiguous point range per thread, each into its own buffer (no write conflicts).
  const int chunks = static_cast<int>(std::clamp<int64_t>(n_ / kMinPointChunk, 1, num_threads));
  const int64_t per_chunk = (n_ + chunks - 1) / chunks;
  grow_to(ws.values, slots);
  if (static_cast<int>(ws.splat.size()) < chunks - 1) ws.splat.resize(chunks - 1);
  for (int c = 1; c < chunks; ++c) grow_to(ws.splat[c - 1], slots);
  parallel_for(chunks, 1, chunks, [&](int64_t cb, int64_t ce) {
    for (int64_t c = cb; c < ce; ++c) {
      float* dst = c == 0 ? ws.values.data() : ws.splat[c - 1].data();
      std::fill_n(dst, slots, 0.0f);
      const int64_t b = c * per_chunk, e = std::min(n_, b + per_chunk);
      with_vertex_count(vd, [&](auto VD) {
        with_offsets([&](const auto* o) {
          if (in == nullptr) splat_range<VD, 1, true>(in, vd, vs, b, e, o, weight_.data(), dst);
          else if (vs == 1) splat_range<VD, 1>(in, vd, vs, b, e, o, weight_.data(), dst);
          else splat_range<VD, 0>(in, vd, vs, b, e, o, weight_.data(), dst);
        });
      });
    }
  });
  if (chunks == 1) return;
  parallel_for(static_cast<int64_t>(slots), kMinVertexChunk, num_threads, [&](int64_t b, int64_t e) {
    for (int c = 1; c < chunks; ++c) {
      const float* src = ws.splat[c - 1].data();
      for (int64_t j = b; j < e; ++j) ws.values[j] += src[j];
    }
  });
}

void PermutohedralLattice::blur(std::vector<float>& values, std::vector<float>& scratch, int vs,
                                int num_threads) const {
  grow_to(scratch, static_cast<size_t>(m_ + 1) * vs);
  std::fill_n(scratch.data(), vs, 0.0f);  // the "none" slot neighbours outside read
  for (int axis = 0; axis <= d_; ++axis) {
    const int32_t* nb = &neighbors_[static_cast<size_t>(axis) * m_ * 2];
    const float* src = values.data();
    float* dst = scratch.data();
    parallel_for(m_, kMinBlurChunk, num_threads, [&](int64_t b, int64_t e) {
      if (vs == 1) {  // the two-label CRF: one channel
        for (int64_t j = b; j < e; ++j) dst[j + 1] = src[j + 1] + 0.5f * (src[nb[2 * j]] + src[nb[2 * j + 1]]);
        return;
      }
      for (int64_t j = b; j < e; ++j) {
        const float* self = src + (j + 1) * vs;
        const float* n1 = src + static_cast<int64_t>(nb[2 * j]) * vs;
        const float* n2 = src + static_cast<int64_t>(nb[2 * j + 1]) * vs;
        float* o = dst + (j + 1) * vs;
        for (int k = 0; k < vs; ++k) o[k] = self[k] + 0.5f * (n1[k] + n2[k]);
      }
    });
    values.swap(scratch);
  }
}

float PermutohedralLattice::slice_scale() const {
  // Compensates the blur's gain so a constant signal keeps its scale (as in the reference).
  return 1.0f / (1.0f + std::pow(2.0f, -static_cast<float>(d_)));
}

void PermutohedralLattice::slice(float* out, int vs, int num_threads, const Workspace& ws) const {
  const int vd = d_ + 1;
  const float alpha = slice_scale();
  parallel_for(n_, kMinPointChunk, num_threads, [&](int64_t b, int64_t e) {
    with_vertex_count(vd, [&](auto VD) {
      with_offsets([&](const auto* o) {
        if (vs == 1) slice_range<VD, 1>(ws.values.data(), vd, vs, b, e, o, weight_.data(), alpha, out);
        else slice_range<VD, 0>(ws.values.data(), vd, vs, b, e, o, weight_.data(), alpha, out);
      });
    });
  });
}

}  // namespace ivos
