// Bindings of the click-rendering op: numpy arrays to the CPU function, device pointers (ints)
// plus a stream handle (int) to the CUDA one, and a few cudart helpers so Python can own
// device buffers without an extra package. Validation with user-facing messages happens in
// engine/ops/clicks.py; these checks only keep the raw pointers safe.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "render_clicks/render_clicks.h"

namespace py = pybind11;

namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using Int64Array = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;
using Int32Array = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;

// The Python arrays behind an ivos::ClickInputs; keeps them alive while the GIL is released.
struct ClickArrays {
  FloatArray clicks, stroke_points;
  Int64Array stroke_offsets;
  Int32Array stroke_labels;

  ivos::ClickInputs view() const {
    if (clicks.size() % 3 != 0) throw std::invalid_argument("clicks must have shape (N, 3)");
    if (stroke_points.size() % 2 != 0) throw std::invalid_argument("stroke_points must have shape (P, 2)");
    const int64_t num_strokes = stroke_labels.size();
    if (stroke_offsets.size() != num_strokes + 1) {
      throw std::invalid_argument("stroke_offsets must have num_strokes + 1 entries");
    }
    if (num_strokes > 0 && stroke_offsets.data()[num_strokes] != stroke_points.size() / 2) {
      throw std::invalid_argument("stroke_offsets[-1] must equal the number of stroke points");
    }
    ivos::ClickInputs in;
    in.clicks = clicks.data();
    in.num_clicks = clicks.size() / 3;
    in.stroke_points = stroke_points.data();
    in.stroke_offsets = stroke_offsets.data();
    in.stroke_labels = stroke_labels.data();
    in.num_strokes = num_strokes;
    return in;
  }
};

// Checks `out` is a writeable C-contiguous 2-D float32 array (never a converted copy, whose
// writes would be lost) and returns its data pointer.
float* output_image(py::array& out, int64_t& height, int64_t& width) {
  if (!py::isinstance<py::array_t<float>>(out) || out.ndim() != 2 ||
      !(out.flags() & py::array::c_style) || !out.writeable()) {
    throw std::invalid_argument("out must be a writeable C-contiguous 2-D float32 array");
  }
  height = out.shape(0);
  width = out.shape(1);
  return static_cast<float*>(out.mutable_data());
}

// Memory for the arrays empty_image() returns, recycled once Python frees them. A fresh
// 480x854 float32 image costs ~400 page faults when first written (~0.5 ms, more than the
// rendering itself); in the interactive loop the click map is rendered again at the same
// size for every click, so the previous map's memory is usually waiting here.
class ImageMemory {
 public:
  static ImageMemory& instance() {
    static ImageMemory* memory = new ImageMemory;  // never destroyed: arrays may outlive exit
    return *memory;
  }

  // Uninitialised, 64-byte aligned; the size sits in the first 64 bytes.
  float* take(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (size_t k = 0; k < free_.size(); ++k) {
        if (size_of(free_[k]) != bytes) continue;
        char* block = free_[k];
        free_.erase(free_.begin() + k);
        held_ -= bytes;
        return data_of(block);
      }
    }
    char* block = static_cast<char*>(std::aligned_alloc(kHeader, kHeader + (bytes + kHeader - 1) / kHeader * kHeader));
    if (!block) throw std::bad_alloc();
    *reinterpret_cast<size_t*>(block) = bytes;
    return data_of(block);
  }

  // Keeps the block for reuse (the newest few, up to kMaxHeld bytes) or frees it.
  void give(float* data) {
    char* block = reinterpret_cast<char*>(data) - kHeader;
    const size_t bytes = size_of(block);
    std::lock_guard<std::mutex> lock(mutex_);
    if (bytes <= kMaxHeld) {
      free_.push_back(block);
      held_ += bytes;
    } else {
      std::free(block);
    }
    while (held_ > kMaxHeld || free_.size() > kMaxBlocks) {
      held_ -= size_of(free_.front());
      std::free(free_.front());
      free_.erase(free_.begin());
    }
  }

 private:
  static constexpr size_t kHeader = 64;
  static constexpr size_t kMaxHeld = size_t{64} << 20;
  static constexpr size_t kMaxBlocks = 4;
  static size_t size_of(char* block) { return *reinterpret_cast<size_t*>(block); }
  static float* data_of(char* block) { return reinterpret_cast<float*>(block + kHeader); }

  std::mutex mutex_;
  std::vector<char*> free_;  // oldest first
  size_t held_ = 0;
};

// An uninitialised C-contiguous (height, width) float32 array backed by ImageMemory.
py::array empty_image(int64_t height, int64_t width) {
  if (height < 1 || width < 1) throw std::invalid_argument("empty_image: height and width must be >= 1");
  float* data = ImageMemory::instance().take(static_cast<size_t>(height) * width * sizeof(float));
  py::capsule owner(data, [](void* p) { ImageMemory::instance().give(static_cast<float*>(p)); });
  return py::array_t<float>({height, width}, data, owner);
}

void render_cpu(py::array out, const ClickArrays& arrays, double sigma, int num_threads) {
  int64_t height = 0, width = 0;
  float* data = output_image(out, height, width);
  const ivos::ClickInputs in = arrays.view();
  py::gil_scoped_release release;
  ivos::render_clicks_cpu(data, height, width, in, sigma, num_threads);
}

#ifdef IVOS_WITH_CUDA
void* as_pointer(uintptr_t value) { return reinterpret_cast<void*>(value); }
cudaStream_t as_stream(uintptr_t value) { return reinterpret_cast<cudaStream_t>(value); }

void render_cuda(uintptr_t out_ptr, int64_t height, int64_t width, const ClickArrays& arrays,
                 double sigma, uintptr_t stream) {
  const ivos::ClickInputs in = arrays.view();
  py::gil_scoped_release release;
  ivos::render_clicks_cuda(static_cast<float*>(as_pointer(out_ptr)), height, width, in, sigma,
                           as_stream(stream));
}

void render_cuda_to_host(py::array out, const ClickArrays& arrays, double sigma) {
  int64_t height = 0, width = 0;
  float* data = output_image(out, height, width);
  const ivos::ClickInputs in = arrays.view();
  py::gil_scoped_release release;
  ivos::render_clicks_cuda_to_host(data, height, width, in, sigma);
}

void memcpy_to_host(py::array out, uintptr_t src) {
  if (!(out.flags() & py::array::c_style) || !out.writeable()) {
    throw std::invalid_argument("out must be a writeable C-contiguous array");
  }
  void* dst = out.mutable_data();
  const size_t bytes = static_cast<size_t>(out.nbytes());
  py::gil_scoped_release release;
  ivos::cuda_memcpy_to_host(dst, as_pointer(src), bytes);
}
#else
[[noreturn]] void no_cuda() {
  throw ivos::CudaUnavailableError(
      "ivos._C was compiled without CUDA: rebuild with the CUDA toolkit (nvcc) installed, "
      "e.g. IVOS_CUDA=ON pip install --no-build-isolation -e .");
}
#endif

// Groups the input arrays (taken as separate keyword arguments by the bound functions).
ClickArrays click_arrays(FloatArray clicks, FloatArray stroke_points, Int64Array stroke_offsets,
                         Int32Array stroke_labels) {
  return {std::move(clicks), std::move(stroke_points), std::move(stroke_offsets),
          std::move(stroke_labels)};
}

void register_cuda(py::module_& m) {
#ifdef IVOS_WITH_CUDA
  m.def(
      "render_clicks_cuda",
      [](uintptr_t out_ptr, int64_t height, int64_t width, FloatArray clicks, FloatArray points,
         Int64Array offsets, Int32Array labels, double sigma, uintptr_t stream) {
        render_cuda(out_ptr, height, width, click_arrays(clicks, points, offsets, labels), sigma,
                    stream);
      },
      py::arg("out_ptr"), py::arg("height"), py::arg("width"), py::arg("clicks"),
      py::arg("stroke_points"), py::arg("stroke_offsets"), py::arg("stroke_labels"),
      py::arg("sigma"), py::arg("stream") = 0,
      "Renders into the float32 (height, width) device buffer at out_ptr on stream (a "
      "cudaStream_t as int; 0 = legacy default). Asynchronous.");
  m.def(
      "render_clicks_cuda_to_host",
      [](py::array out, FloatArray clicks, FloatArray points, Int64Array offsets,
         Int32Array labels, double sigma) {
        render_cuda_to_host(out, click_arrays(clicks, points, offsets, labels), sigma);
      },
      py::arg("out"), py::arg("clicks"), py::arg("stroke_points"), py::arg("stroke_offsets"),
      py::arg("stroke_labels"), py::arg("sigma"),
      "Renders on the GPU through a temporary device buffer into the numpy array out.");
  m.def("cuda_malloc", [](size_t bytes) { return reinterpret_cast<uintptr_t>(ivos::cuda_malloc(bytes)); },
        py::arg("nbytes"));
  m.def("cuda_free", [](uintptr_t ptr) { ivos::cuda_free(as_pointer(ptr)); }, py::arg("ptr"));
  m.def("cuda_memset", [](uintptr_t ptr, int value, size_t bytes) {
    ivos::cuda_memset(as_pointer(ptr), value, bytes);
  }, py::arg("ptr"), py::arg("value"), py::arg("nbytes"));
  m.def("cuda_memcpy_to_host", &memcpy_to_host, py::arg("out"), py::arg("src_ptr"),
        "Copies out.nbytes bytes from device memory into the numpy array out (synchronous).");
  m.def("cuda_stream_create", [] { return reinterpret_cast<uintptr_t>(ivos::cuda_stream_create()); });
  m.def("cuda_stream_destroy", [](uintptr_t s) { ivos::cuda_stream_destroy(as_stream(s)); },
        py::arg("stream"));
  m.def("cuda_stream_synchronize", [](uintptr_t s) {
    py::gil_scoped_release release;
    ivos::cuda_stream_synchronize(as_stream(s));
  }, py::arg("stream"));
#else
  for (const char* name : {"render_clicks_cuda", "render_clicks_cuda_to_host", "cuda_malloc",
                           "cuda_free", "cuda_memset", "cuda_memcpy_to_host",
                           "cuda_stream_create", "cuda_stream_destroy",
                           "cuda_stream_synchronize"}) {
    m.def(name, [](py::args, py::kwargs) { no_cuda(); });
  }
#endif
}

}  // namespace

void register_render_clicks(py::module_& m) {
  // Local to this module: another build of ivos._C loaded beside it (ivos-bench ops
  // --baseline-native) would otherwise translate this module's errors into its own class.
  py::register_local_exception<ivos::CudaUnavailableError>(m, "CudaUnavailableError", PyExc_RuntimeError);
  m.def(
      "render_clicks_cpu",
      [](py::array out, FloatArray clicks, FloatArray points, Int64Array offsets,
         Int32Array labels, double sigma, int num_threads) {
        render_cpu(out, click_arrays(clicks, points, offsets, labels), sigma, num_threads);
      },
      py::arg("out"), py::arg("clicks"), py::arg("stroke_points"), py::arg("stroke_offsets"),
      py::arg("stroke_labels"), py::arg("sigma"), py::arg("num_threads") = 0,
      "Renders clicks (N, 3) and strokes (points (P, 2), offsets (S + 1,), labels (S,)) into "
      "the float32 (H, W) array out, overwriting it. num_threads <= 0: the default.");
  m.def("empty_image", &empty_image, py::arg("height"), py::arg("width"),
        "An uninitialised float32 (height, width) array whose memory is recycled from arrays "
        "this function returned earlier and Python has freed (no page faults on reuse).");
  register_cuda(m);
}
