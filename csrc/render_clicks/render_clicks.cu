// CUDA twin of the click-rendering op (see render_clicks.h for the semantics).
//
// One thread per pixel loops over the clicks and strokes (a handful per interaction) and
// writes its pixel once, so the output needs no clearing pass. Clicks and strokes are packed
// on the host into one small blob, copied with a stream-ordered allocation, and freed on the
// same stream. Precision: the click distance and exp are float32 (relative error ~1e-7);
// stroke geometry is float64 (projecting onto a long segment in float32 would lose ~1e-4 px);
// the sum is float64 like the reference.
#include "render_clicks/render_clicks.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

namespace ivos {
namespace {

#define IVOS_CUDA_CHECK(call)                                                        \
  do {                                                                               \
    cudaError_t ivos_err_ = (call);                                                  \
    if (ivos_err_ != cudaSuccess) throw_cuda_error(ivos_err_, #call, __FILE__, __LINE__); \
  } while (0)

[[noreturn]] void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line) {
  std::string msg = std::string("CUDA error in ") + call + " (" + file + ":" +
                    std::to_string(line) + "): " + cudaGetErrorName(err) + ": " +
                    cudaGetErrorString(err);
  if (err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver ||
      err == cudaErrorInitializationError) {
    throw CudaUnavailableError(msg);
  }
  throw std::runtime_error(msg);
}

// Throws CudaUnavailableError unless a driver and at least one device are present.
void require_device() {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0) {
    cudaGetLastError();  // clear the error so later calls start clean
    throw CudaUnavailableError(std::string("render_clicks: no usable CUDA device (") +
                               (err != cudaSuccess ? cudaGetErrorString(err) : "0 devices") + ")");
  }
}

// Throws std::invalid_argument unless ptr is device (or managed) memory: a host pointer
// would otherwise surface later as an opaque illegal-address error.
void require_device_pointer(const void* ptr, const char* name) {
  cudaPointerAttributes attr;
  IVOS_CUDA_CHECK(cudaPointerGetAttributes(&attr, ptr));
  if (attr.type != cudaMemoryTypeDevice && attr.type != cudaMemoryTypeManaged) {
    throw std::invalid_argument(std::string("render_clicks: ") + name +
                                " is not a CUDA device pointer");
  }
}

struct GpuClick {
  float x, y, sign, unused;
};

// Segment a + t (dx, dy), t in [0, 1]; inv_len2 = 0 for a point.
struct GpuSegment {
  double ax, ay, dx, dy, inv_len2;
  float x_lo, x_hi, y_lo, y_hi;  // bounding box grown by the radius
};

struct GpuStroke {
  float x_lo, x_hi, y_lo, y_hi;  // bounding box grown by the radius
  int first_segment, num_segments;
  float sign, unused;
};

struct GpuParams {
  int64_t height, width;
  int num_clicks, num_strokes;
  float inv_two_sigma2, radius2, floor, scale;
  const GpuClick* clicks;
  const GpuSegment* segments;
  const GpuStroke* strokes;
};

// Host-side packing of the inputs into one blob: [clicks | segments | strokes], each
// section 16-byte aligned. Offsets are relative to the blob start.
struct Packed {
  std::vector<unsigned char> blob;
  size_t clicks_at = 0, segments_at = 0, strokes_at = 0;
  int num_clicks = 0, num_strokes = 0;
};

template <typename T>
size_t append(std::vector<unsigned char>& blob, const std::vector<T>& items) {
  size_t at = (blob.size() + 15) / 16 * 16;
  blob.resize(at + items.size() * sizeof(T));
  if (!items.empty()) std::memcpy(blob.data() + at, items.data(), items.size() * sizeof(T));
  return at;
}

GpuSegment make_segment(const float* a, const float* b, float r) {
  GpuSegment s;
  s.ax = a[0];
  s.ay = a[1];
  s.dx = static_cast<double>(b[0]) - s.ax;
  s.dy = static_cast<double>(b[1]) - s.ay;
  const double len2 = s.dx * s.dx + s.dy * s.dy;
  s.inv_len2 = len2 > 0.0 ? 1.0 / len2 : 0.0;
  s.x_lo = std::min(a[0], b[0]) - r;
  s.x_hi = std::max(a[0], b[0]) + r;
  s.y_lo = std::min(a[1], b[1]) - r;
  s.y_hi = std::max(a[1], b[1]) + r;
  return s;
}

Packed pack_inputs(const ClickInputs& in, float r) {
  std::vector<GpuClick> clicks;
  for (int64_t k = 0; k < in.num_clicks; ++k) {
    const float* c = in.clicks + 3 * k;
    clicks.push_back({c[0], c[1], c[2] > 0.5f ? 1.0f : -1.0f, 0.0f});
  }
  std::vector<GpuSegment> segments;
  std::vector<GpuStroke> strokes;
  for (int64_t s = 0; s < in.num_strokes; ++s) {
    const float* pts = in.stroke_points + 2 * in.stroke_offsets[s];
    const int64_t m = in.stroke_offsets[s + 1] - in.stroke_offsets[s];
    GpuStroke st{pts[0], pts[0], pts[1], pts[1], static_cast<int>(segments.size()), 0,
                 in.stroke_labels[s] == 1 ? 1.0f : -1.0f, 0.0f};
    // A single point is a zero-length segment; otherwise one segment per consecutive pair.
    for (int64_t k = 0; k < std::max<int64_t>(1, m - 1); ++k) {
      segments.push_back(make_segment(pts + 2 * k, pts + 2 * std::min(k + 1, m - 1), r));
      const GpuSegment& seg = segments.back();
      st.x_lo = std::min(st.x_lo, seg.x_lo);
      st.x_hi = std::max(st.x_hi, seg.x_hi);
      st.y_lo = std::min(st.y_lo, seg.y_lo);
      st.y_hi = std::max(st.y_hi, seg.y_hi);
    }
    st.num_segments = static_cast<int>(segments.size()) - st.first_segment;
    strokes.push_back(st);
  }
  Packed p;
  p.clicks_at = append(p.blob, clicks);
  p.segments_at = append(p.blob, segments);
  p.strokes_at = append(p.blob, strokes);
  p.num_clicks = static_cast<int>(clicks.size());
  p.num_strokes = static_cast<int>(strokes.size());
  return p;
}

__device__ float truncated_gaussian(float d2, const GpuParams& p) {
  return d2 < p.radius2 ? (expf(-d2 * p.inv_two_sigma2) - p.floor) * p.scale : 0.0f;
}

__device__ double stroke_dist2(const GpuParams& p, const GpuStroke& st, double x, double y) {
  double best = INFINITY;
  for (int k = st.first_segment; k < st.first_segment + st.num_segments; ++k) {
    const GpuSegment& s = p.segments[k];
    if (x < s.x_lo || x > s.x_hi || y < s.y_lo || y > s.y_hi) continue;
    const double px = x - s.ax, py = y - s.ay;
    const double t = fmin(fmax((px * s.dx + py * s.dy) * s.inv_len2, 0.0), 1.0);
    const double ex = px - t * s.dx, ey = py - t * s.dy;
    best = fmin(best, ex * ex + ey * ey);
  }
  return best;
}

__global__ void render_clicks_kernel(float* __restrict__ out, GpuParams p) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t i = static_cast<int64_t>(blockIdx.y) * blockDim.y + threadIdx.y;
  if (i >= p.height || j >= p.width) return;
  const float xf = static_cast<float>(j), yf = static_cast<float>(i);
  double acc = 0.0;
  for (int k = 0; k < p.num_clicks; ++k) {
    const GpuClick c = p.clicks[k];  // same address across the warp: a broadcast load
    const float dx = xf - c.x, dy = yf - c.y;
    acc += c.sign * truncated_gaussian(dx * dx + dy * dy, p);
  }
  for (int s = 0; s < p.num_strokes; ++s) {
    const GpuStroke st = p.strokes[s];
    if (xf < st.x_lo || xf > st.x_hi || yf < st.y_lo || yf > st.y_hi) continue;
    const double d2 = stroke_dist2(p, st, static_cast<double>(j), static_cast<double>(i));
    if (d2 < p.radius2) acc += st.sign * truncated_gaussian(static_cast<float>(d2), p);
  }
  out[i * p.width + j] = static_cast<float>(fmin(fmax(acc, -1.0), 1.0));
}

// Frees a stream-ordered allocation on scope exit (also when a later call throws).
struct AsyncBuffer {
  void* ptr = nullptr;
  cudaStream_t stream = nullptr;
  ~AsyncBuffer() {
    if (ptr) cudaFreeAsync(ptr, stream);  // destructor: cannot throw; a failure here is moot
  }
};

// Frees a cudaMalloc allocation on scope exit.
struct DeviceBuffer {
  void* ptr = nullptr;
  ~DeviceBuffer() {
    if (ptr) cudaFree(ptr);
  }
};

constexpr unsigned kBlockX = 32, kBlockY = 8;

}  // namespace

void render_clicks_cuda(float* out_device, int64_t height, int64_t width, const ClickInputs& in,
                        double sigma, cudaStream_t stream) {
  validate_click_inputs(height, width, in, sigma);
  require_device();
  require_device_pointer(out_device, "the output buffer");
  const double radius = kClickTruncate * sigma;
  Packed packed = pack_inputs(in, static_cast<float>(radius));

  AsyncBuffer blob;
  blob.stream = stream;
  IVOS_CUDA_CHECK(cudaMallocAsync(&blob.ptr, std::max<size_t>(packed.blob.size(), 16), stream));
  // From pageable memory this returns once the bytes are staged, so `packed` may die after.
  IVOS_CUDA_CHECK(cudaMemcpyAsync(blob.ptr, packed.blob.data(), packed.blob.size(),
                                  cudaMemcpyHostToDevice, stream));
  const unsigned char* base = static_cast<const unsigned char*>(blob.ptr);
  const double floor = std::exp(-0.5 * kClickTruncate * kClickTruncate);
  GpuParams params{height,
                   width,
                   packed.num_clicks,
                   packed.num_strokes,
                   static_cast<float>(1.0 / (2.0 * sigma * sigma)),
                   static_cast<float>(radius * radius),
                   static_cast<float>(floor),
                   static_cast<float>(1.0 / (1.0 - floor)),
                   reinterpret_cast<const GpuClick*>(base + packed.clicks_at),
                   reinterpret_cast<const GpuSegment*>(base + packed.segments_at),
                   reinterpret_cast<const GpuStroke*>(base + packed.strokes_at)};
  const dim3 block(kBlockX, kBlockY);
  const int64_t grid_y = (height + kBlockY - 1) / kBlockY;
  if (grid_y > 65535) throw std::invalid_argument("render_clicks: height too large for the CUDA grid");
  const dim3 grid(static_cast<unsigned>((width + kBlockX - 1) / kBlockX),
                  static_cast<unsigned>(grid_y));
  render_clicks_kernel<<<grid, block, 0, stream>>>(out_device, params);
  IVOS_CUDA_CHECK(cudaGetLastError());
}

void render_clicks_cuda_to_host(float* out_host, int64_t height, int64_t width,
                                const ClickInputs& in, double sigma) {
  validate_click_inputs(height, width, in, sigma);
  require_device();
  const size_t bytes = static_cast<size_t>(height) * static_cast<size_t>(width) * sizeof(float);
  DeviceBuffer out;
  IVOS_CUDA_CHECK(cudaMalloc(&out.ptr, bytes));
  render_clicks_cuda(static_cast<float*>(out.ptr), height, width, in, sigma, nullptr);
  // Legacy default stream: this copy waits for the kernel and blocks until done.
  IVOS_CUDA_CHECK(cudaMemcpy(out_host, out.ptr, bytes, cudaMemcpyDeviceToHost));
}

void* cuda_malloc(size_t bytes) {
  require_device();
  void* ptr = nullptr;
  IVOS_CUDA_CHECK(cudaMalloc(&ptr, bytes));
  return ptr;
}

void cuda_free(void* ptr) { IVOS_CUDA_CHECK(cudaFree(ptr)); }

void cuda_memcpy_to_host(void* dst_host, const void* src_device, size_t bytes) {
  IVOS_CUDA_CHECK(cudaMemcpy(dst_host, src_device, bytes, cudaMemcpyDeviceToHost));
}

void cuda_memset(void* ptr, int byte_value, size_t bytes) {
  // Synchronous, so work queued afterwards on any stream (non-blocking ones included) sees it.
  IVOS_CUDA_CHECK(cudaMemsetAsync(ptr, byte_value, bytes, nullptr));
  IVOS_CUDA_CHECK(cudaStreamSynchronize(nullptr));
}

cudaStream_t cuda_stream_create() {
  require_device();
  cudaStream_t stream = nullptr;
  IVOS_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  return stream;
}

void cuda_stream_destroy(cudaStream_t stream) { IVOS_CUDA_CHECK(cudaStreamDestroy(stream)); }

void cuda_stream_synchronize(cudaStream_t stream) {
  IVOS_CUDA_CHECK(cudaStreamSynchronize(stream));
}

}  // namespace ivos
