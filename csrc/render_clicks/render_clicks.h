// Click encoding: positive/negative clicks and strokes rendered as +/- truncated Gaussians
// into one float32 channel. Exact semantics (shared with the numpy reference in
// engine/ops/clicks.py):
//   * pixel (row i, col j) has its centre at x = j, y = i; clicks may lie outside the image;
//   * g(d) = (exp(-d^2 / 2 sigma^2) - e) / (1 - e) for d < kTruncate * sigma, else 0,
//     with e = exp(-kTruncate^2 / 2) (peak 1, continuous cut-off);
//   * a click adds (label 1) or subtracts (label 0) g(|p - c|); a stroke (polyline) does
//     the same with the distance from p to the polyline, once per stroke;
//   * everything is summed, then clipped to [-1, 1]. The output is overwritten in full.
// Raw pointers and sizes only: no Python, no torch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>

// cudaStream_t without including cuda_runtime.h, so CPU-only code can use this header
// (the same typedef as in the CUDA headers; repeating an identical typedef is legal C++).
struct CUstream_st;
typedef CUstream_st* cudaStream_t;

namespace ivos {

// Gaussians are evaluated within kClickTruncate * sigma of the click or stroke.
constexpr double kClickTruncate = 4.0;

// Clicks and strokes, all in host memory, coordinates in pixels.
struct ClickInputs {
  const float* clicks = nullptr;           // (num_clicks, 3): x, y, label (1 = +, 0 = -)
  int64_t num_clicks = 0;
  const float* stroke_points = nullptr;    // (stroke_offsets[num_strokes], 2): x, y
  const int64_t* stroke_offsets = nullptr; // (num_strokes + 1): stroke s = points [o[s], o[s+1])
  const int32_t* stroke_labels = nullptr;  // (num_strokes): 1 = +, 0 = -
  int64_t num_strokes = 0;
};

// Throws std::invalid_argument on sizes < 1, sigma not > 0, or a stroke with no point.
void validate_click_inputs(int64_t height, int64_t width, const ClickInputs& in, double sigma);

// Renders into `out` (host, height x width float32, row-major), with up to num_threads threads
// (<= 0: default_num_threads()). Math in float64.
void render_clicks_cpu(float* out, int64_t height, int64_t width, const ClickInputs& in,
                       double sigma, int num_threads);

// Thrown by the CUDA entry points when there is no usable CUDA driver or device, so callers
// can fall back to the CPU op.
class CudaUnavailableError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Renders into `out_device` (device memory, height x width float32, row-major) on `stream`
// (nullptr: the legacy default stream). Inputs are host memory; they are copied to a small
// stream-ordered device buffer, so the host arrays may be freed once this returns. Does not
// synchronise the stream. Throws CudaUnavailableError without a device, std::runtime_error on
// any other CUDA error. Only defined when compiled with CUDA (IVOS_WITH_CUDA).
void render_clicks_cuda(float* out_device, int64_t height, int64_t width, const ClickInputs& in,
                        double sigma, cudaStream_t stream);

// Convenience for callers holding host memory: renders on the GPU into a temporary device
// buffer and copies the result into `out_host` (height x width float32). Synchronous.
void render_clicks_cuda_to_host(float* out_host, int64_t height, int64_t width,
                                const ClickInputs& in, double sigma);

// Minimal device-memory and stream helpers so Python can own device buffers without an extra
// package (device="cuda" copy-back, tests of the device-pointer entry). All checked; they
// throw like render_clicks_cuda. The copy and the memset are synchronous on the legacy default
// stream: synchronise a non-blocking stream before copying what it wrote.
void* cuda_malloc(size_t bytes);
void cuda_free(void* ptr);
void cuda_memcpy_to_host(void* dst_host, const void* src_device, size_t bytes);
void cuda_memset(void* ptr, int byte_value, size_t bytes);
cudaStream_t cuda_stream_create();  // a non-blocking stream
void cuda_stream_destroy(cudaStream_t stream);
void cuda_stream_synchronize(cudaStream_t stream);

}  // namespace ivos
