// pybind11 glue for the dense CRF (csrc/dense_crf). Arguments are validated in
// ivos.ops.crf; this layer only re-checks what would make the C++ read out of bounds.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>

#include "common/parallel.h"
#include "dense_crf/dense_crf.h"

namespace py = pybind11;

namespace {

using ImageArray = py::array_t<uint8_t, py::array::c_style>;
using ProbArray = py::array_t<float, py::array::c_style>;

// image (H, W, 3) uint8; prob (H, W) or (L, H, W) float32. Returns a new array shaped like prob.
ProbArray dense_crf(const ImageArray& image, const ProbArray& prob, int iterations, float sxy_gaussian,
                    float compat_gaussian, float sxy_bilateral, float srgb, float compat_bilateral,
                    float prob_floor, int num_threads) {
  if (image.ndim() != 3 || image.shape(2) != 3) throw std::invalid_argument("image must have shape (H, W, 3)");
  const int64_t h = image.shape(0), w = image.shape(1);
  const bool planar = prob.ndim() == 3;
  if (!(prob.ndim() == 2 || planar) || prob.shape(prob.ndim() - 2) != h || prob.shape(prob.ndim() - 1) != w)
    throw std::invalid_argument("prob must have shape (H, W) or (L, H, W) matching the image");
  const int planes = planar ? static_cast<int>(prob.shape(0)) : 1;
  if (planar && planes < 2) throw std::invalid_argument("prob with shape (L, H, W) needs L >= 2");
  ivos::DenseCrfParams params;
  params.iterations = iterations;
  params.sxy_gaussian = sxy_gaussian;
  params.compat_gaussian = compat_gaussian;
  params.sxy_bilateral = sxy_bilateral;
  params.srgb = srgb;
  params.compat_bilateral = compat_bilateral;
  params.prob_floor = prob_floor;
  ProbArray out(std::vector<py::ssize_t>(prob.shape(), prob.shape() + prob.ndim()));
  const uint8_t* img = image.data();
  const float* in = prob.data();
  float* dst = out.mutable_data();
  const int threads = num_threads > 0 ? num_threads : ivos::default_num_threads();
  {
    py::gil_scoped_release release;
    ivos::dense_crf_cpu(img, h, w, in, planes, params, dst, threads);
  }
  return out;
}

}  // namespace

void register_dense_crf(py::module_& m) {
  m.def("dense_crf_cpu", &dense_crf, py::arg("image"), py::arg("prob"), py::arg("iterations"),
        py::arg("sxy_gaussian"), py::arg("compat_gaussian"), py::arg("sxy_bilateral"), py::arg("srgb"),
        py::arg("compat_bilateral"), py::arg("prob_floor"), py::arg("num_threads") = 0,
        "Dense CRF mean-field inference (C++ permutohedral lattice). See ivos.dense_crf.");
}
