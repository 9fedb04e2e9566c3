#include <algorithm>
#include <cmath>
#include <list>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "common/parallel.h"
#include "common/simd.h"
#include "common/stopwatch.h"
#include "dense_crf/dense_crf.h"
#include "dense_crf/fast_math.h"
#include "dense_crf/mean_field.h"
#include "dense_crf/permutohedral.h"

namespace ivos {
namespace {

// Pixels per parallel chunk of the per-pixel loops (the unary): below this, thread
// start-up costs more than the work.
constexpr int64_t kMinPixelChunk = 32768;

// The smoothness kernel's lattice depends only on the image size and sxy_gaussian, so the
// lattices of the last few sizes are kept (a video is refined frame after frame at one
// size). Shared read-only between threads; building happens outside the lock.
class SpatialLatticeCache {
 public:
  std::shared_ptr<const PermutohedralLattice> get(int64_t h, int64_t w, float sxy, int threads,
                                                  PermutohedralLattice::Workspace& ws) {
    const Key key{h, w, sxy};
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto it = entries_.begin(); it != entries_.end(); ++it) {
        if (!(it->first == key)) continue;
        entries_.splice(entries_.begin(), entries_, it);  // most recently used first
        return entries_.front().second;
      }
    }
    auto lattice = std::make_shared<PermutohedralLattice>();
    lattice->build_pixels(nullptr, h, w, sxy, 1.0f, threads);
    lattice->normalize(threads, ws);
    lattice->release_build_scratch();
    std::lock_guard<std::mutex> lock(mutex_);
    entries_.emplace_front(key, lattice);
    size_t bytes = 0;
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      bytes += it->second->memory_bytes();
      if (it != entries_.begin() && (bytes > kMaxBytes || entries_.size() > kMaxEntries)) {
        entries_.erase(it, entries_.end());
        break;
      }
    }
    return lattice;
  }

 private:
  struct Key {
    int64_t h, w;
    float sxy;
    bool operator==(const Key& o) const { return h == o.h && w == o.w && sxy == o.sxy; }
  };
  static constexpr size_t kMaxEntries = 4;
  static constexpr size_t kMaxBytes = size_t{256} << 20;  // ~20 lattices of 480x854
  std::mutex mutex_;
  std::list<std::pair<Key, std::shared_ptr<const PermutohedralLattice>>> entries_;
};

SpatialLatticeCache& spatial_cache() {
  static SpatialLatticeCache* cache = new SpatialLatticeCache;  // never destroyed (exit order)
  return *cache;
}

// Images above this size release their per-thread scratch after a call, so one huge image
// does not pin its memory (smaller ones keep it: allocating and page-faulting tens of MB per
// call would cost more than several mean-field iterations).
constexpr int64_t kKeepPixels = int64_t{1} << 21;  // 1080p

// Points the lattice Workspace's stage timers at `profile` (or nowhere) for one call.
void attach(PermutohedralLattice::Workspace& ws, CrfProfile* profile) {
  ws.splat_ms = profile ? &profile->splat_ms : nullptr;
  ws.blur_ms = profile ? &profile->blur_ms : nullptr;
  ws.slice_ms = profile ? &profile->slice_ms : nullptr;
}

// log(p) of p clipped to [floor, 1]: minus the unary of a label with probability p.
inline float clipped_log(float p, float floor) { return log_approx(std::min(1.0f, std::max(p, floor))); }

// u = log(clip(fg)) - log(clip(bg)) over n pixels, bg = 1 - fg when null (the unary
// difference of a two-label problem).
IVOS_AVX2_CLONES void binary_unary(const float* fg, const float* bg, float floor, int64_t n, float* u) {
  // Two loops without a per-pixel branch, so both vectorise.
  if (bg == nullptr)
    for (int64_t i = 0; i < n; ++i) u[i] = clipped_log(fg[i], floor) - clipped_log(1.0f - fg[i], floor);
  else
    for (int64_t i = 0; i < n; ++i) u[i] = clipped_log(fg[i], floor) - clipped_log(bg[i], floor);
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

void DenseCrf::build(const uint8_t* image, int64_t height, int64_t width, const DenseCrfParams& params,
                     int num_threads, CrfProfile* profile) {
  check_params(height, width, 1, params);
  const int threads = std::max(1, num_threads);
  height_ = height;
  width_ = width;
  params_ = params;
  thread_local PermutohedralLattice::Workspace filter;
  attach(filter, nullptr);  // normalisation is profiled as a whole
  Stopwatch clock(profile != nullptr);
  // A kernel with weight 0 contributes nothing: skip building its lattice.
  use_bilateral_ = params.iterations > 0 && params.compat_bilateral > 0;
  if (use_bilateral_) {
    bilateral_.build_pixels(image, height, width, params.sxy_bilateral, params.srgb, threads);
    clock.lap(profile ? &profile->build_ms : nullptr);
    bilateral_.normalize(threads, filter);
    clock.lap(profile ? &profile->normalize_ms : nullptr);
  } else {
    bilateral_ = PermutohedralLattice{};
  }
  spatial_.reset();
  if (params.iterations > 0 && params.compat_gaussian > 0) {
    spatial_ = spatial_cache().get(height, width, params.sxy_gaussian, threads, filter);
    clock.lap(profile ? &profile->build_ms : nullptr);
  }
  if (height * width > kKeepPixels) filter = PermutohedralLattice::Workspace{};
}

size_t DenseCrf::memory_bytes() const {
  return (use_bilateral_ ? bilateral_.memory_bytes() : 0) + (spatial_ ? spatial_->memory_bytes() : 0);
}

void DenseCrf::infer(const float* prob, int num_planes, float* out, int num_threads, CrfProfile* profile) const {
  if (num_planes < 1) throw std::invalid_argument("dense_crf: num_planes must be >= 1");
  if (height_ < 1) throw std::invalid_argument("dense_crf: infer() on a DenseCrf that was never built");
  const int threads = std::max(1, num_threads);
  const int64_t n = height_ * width_;
  const bool binary = num_planes <= 2;
  thread_local MeanFieldScratch ws;
  thread_local std::vector<float> unary;
  attach(ws.filter, profile);
  std::vector<PairwiseKernel> kernels;
  if (use_bilateral_) kernels.push_back({&bilateral_, params_.compat_bilateral});
  if (spatial_) kernels.push_back({spatial_.get(), params_.compat_gaussian});

  Stopwatch clock(profile != nullptr);
  double* unary_ms = profile ? &profile->unary_ms : nullptr;
  const float floor = params_.prob_floor;
  if (binary) {
    const float* fg = num_planes == 1 ? prob : prob + n;
    unary.resize(n);
    float* u = unary.data();
    parallel_for(n, kMinPixelChunk, threads, [&](int64_t b, int64_t e) {
      binary_unary(fg + b, num_planes == 1 ? nullptr : prob + b, floor, e - b, u + b);
    });
    clock.lap(unary_ms);
    float* q = num_planes == 1 ? out : out + n;
    mean_field_binary(kernels, unary.data(), n, params_.iterations, q, threads, ws, profile);
    clock.lap(nullptr);
    if (num_planes == 2)
      for (int64_t i = 0; i < n; ++i) out[i] = 1.0f - q[i];
    clock.lap(unary_ms);
  } else {
    const int labels = num_planes;
    unary.resize(n * labels);
    ws.q.resize(n * labels);
    for (int64_t i = 0; i < n; ++i)
      for (int l = 0; l < labels; ++l) unary[i * labels + l] = clipped_log(prob[l * n + i], floor);
    clock.lap(unary_ms);
    mean_field_multi(kernels, unary.data(), n, labels, params_.iterations, ws.q.data(), threads, ws, profile);
    clock.lap(nullptr);
    for (int l = 0; l < labels; ++l)
      for (int64_t i = 0; i < n; ++i) out[l * n + i] = ws.q[i * labels + l];
    clock.lap(unary_ms);
  }
  attach(ws.filter, nullptr);
  if (n > kKeepPixels) {
    ws = MeanFieldScratch{};
    unary = std::vector<float>{};
  }
}

void dense_crf_cpu(const uint8_t* image, int64_t height, int64_t width, const float* prob, int num_planes,
                   const DenseCrfParams& params, float* out, int num_threads, CrfProfile* profile) {
  check_params(height, width, num_planes, params);
  // Rebuilt in place call after call: its buffers are reused, not reallocated.
  thread_local DenseCrf crf;
  crf.build(image, height, width, params, num_threads, profile);
  crf.infer(prob, num_planes, out, num_threads, profile);
  if (height * width > kKeepPixels) crf = DenseCrf{};
}

}  // namespace ivos
