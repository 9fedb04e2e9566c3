// pybind11 glue for the dense CRF (csrc/dense_crf). Arguments are validated in
// ivos.ops.crf; this layer only re-checks what would make the C++ read out of bounds.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <vector>

#include "common/parallel.h"
#include "dense_crf/dense_crf.h"

namespace py = pybind11;

namespace {

using ImageArray = py::array_t<uint8_t, py::array::c_style>;
using ProbArray = py::array_t<float, py::array::c_style>;

ivos::DenseCrfParams make_params(int iterations, float sxy_gaussian, float compat_gaussian, float sxy_bilateral,
                                 float srgb, float compat_bilateral, float prob_floor) {
  ivos::DenseCrfParams params;
  params.iterations = iterations;
  params.sxy_gaussian = sxy_gaussian;
  params.compat_gaussian = compat_gaussian;
  params.sxy_bilateral = sxy_bilateral;
  params.srgb = srgb;
  params.compat_bilateral = compat_bilateral;
  params.prob_floor = prob_floor;
  return params;
}

int threads_or_default(int num_threads) { return num_threads > 0 ? num_threads : ivos::default_num_threads(); }

// image (H, W, 3) uint8 -> (H, W).
std::pair<int64_t, int64_t> image_size(const ImageArray& image) {
  if (image.ndim() != 3 || image.shape(2) != 3) throw std::invalid_argument("image must have shape (H, W, 3)");
  return {image.shape(0), image.shape(1)};
}

// prob (H, W) or (L, H, W) float32 matching (h, w) -> number of planes.
int prob_planes(const ProbArray& prob, int64_t h, int64_t w) {
  const bool planar = prob.ndim() == 3;
  if (!(prob.ndim() == 2 || planar) || prob.shape(prob.ndim() - 2) != h || prob.shape(prob.ndim() - 1) != w)
    throw std::invalid_argument("prob must have shape (H, W) or (L, H, W) matching the image");
  const int planes = planar ? static_cast<int>(prob.shape(0)) : 1;
  if (planar && planes < 2) throw std::invalid_argument("prob with shape (L, H, W) needs L >= 2");
  return planes;
}

ProbArray like(const ProbArray& prob) {
  return ProbArray(std::vector<py::ssize_t>(prob.shape(), prob.shape() + prob.ndim()));
}

py::dict profile_dict(const ivos::CrfProfile& p) {
  py::dict d;
  d["build_ms"] = p.build_ms;
  d["normalize_ms"] = p.normalize_ms;
  d["unary_ms"] = p.unary_ms;
  d["splat_ms"] = p.splat_ms;
  d["blur_ms"] = p.blur_ms;
  d["slice_ms"] = p.slice_ms;
  d["update_ms"] = p.update_ms;
  return d;
}

// One-shot CRF: image (H, W, 3) uint8; prob (H, W) or (L, H, W) float32. Returns a new array
// shaped like prob (with profile=true: (array, {stage: ms})).
py::object dense_crf(const ImageArray& image, const ProbArray& prob, int iterations, float sxy_gaussian,
                     float compat_gaussian, float sxy_bilateral, float srgb, float compat_bilateral, float prob_floor,
                     int num_threads, bool profile) {
  const auto [h, w] = image_size(image);
  const int planes = prob_planes(prob, h, w);
  const ivos::DenseCrfParams params =
      make_params(iterations, sxy_gaussian, compat_gaussian, sxy_bilateral, srgb, compat_bilateral, prob_floor);
  ProbArray out = like(prob);
  const uint8_t* img = image.data();
  const float* in = prob.data();
  float* dst = out.mutable_data();
  const int threads = threads_or_default(num_threads);
  ivos::CrfProfile stages;
  {
    py::gil_scoped_release release;
    ivos::dense_crf_cpu(img, h, w, in, planes, params, dst, threads, profile ? &stages : nullptr);
  }
  if (profile) return py::make_tuple(out, profile_dict(stages));
  return std::move(out);
}

}  // namespace

void register_dense_crf(py::module_& m) {
  m.def("dense_crf_cpu", &dense_crf, py::arg("image"), py::arg("prob"), py::arg("iterations"),
        py::arg("sxy_gaussian"), py::arg("compat_gaussian"), py::arg("sxy_bilateral"), py::arg("srgb"),
        py::arg("compat_bilateral"), py::arg("prob_floor"), py::arg("num_threads") = 0, py::arg("profile") = false,
        "Dense CRF mean-field inference (C++ permutohedral lattice). See ivos.dense_crf.");

  // module_local: the type is this module's own (another build of ivos._C loaded side by
  // side, e.g. by a benchmark comparing builds, registers its own).
  py::class_<ivos::DenseCrf>(m, "DenseCrf",
                             "A dense CRF with its lattices built for one image; infer() runs mean-field only. "
                             "See ivos.ops.crf.DenseCRF.", py::module_local())
      .def(py::init([](const ImageArray& image, int iterations, float sxy_gaussian, float compat_gaussian,
                       float sxy_bilateral, float srgb, float compat_bilateral, float prob_floor, int num_threads) {
             const auto [h, w] = image_size(image);
             const ivos::DenseCrfParams params = make_params(iterations, sxy_gaussian, compat_gaussian,
                                                             sxy_bilateral, srgb, compat_bilateral, prob_floor);
             const uint8_t* img = image.data();
             const int threads = threads_or_default(num_threads);
             py::gil_scoped_release release;
             return new ivos::DenseCrf(img, h, w, params, threads);
           }),
           py::arg("image"), py::arg("iterations"), py::arg("sxy_gaussian"), py::arg("compat_gaussian"),
           py::arg("sxy_bilateral"), py::arg("srgb"), py::arg("compat_bilateral"), py::arg("prob_floor"),
           py::arg("num_threads") = 0)
      .def(
          "infer",
          [](const ivos::DenseCrf& crf, const ProbArray& prob, int num_threads) {
            const int planes = prob_planes(prob, crf.height(), crf.width());
            ProbArray out = like(prob);
            const float* in = prob.data();
            float* dst = out.mutable_data();
            const int threads = threads_or_default(num_threads);
            py::gil_scoped_release release;
            crf.infer(in, planes, dst, threads);
            return out;
          },
          py::arg("prob"), py::arg("num_threads") = 0,
          "prob (H, W) or (L, H, W) float32 -> refined probabilities of the same shape")
      .def_property_readonly("height", &ivos::DenseCrf::height)
      .def_property_readonly("width", &ivos::DenseCrf::width)
      .def_property_readonly("memory_bytes", &ivos::DenseCrf::memory_bytes);
}
