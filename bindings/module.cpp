// ivos._C: thin pybind11 glue over the torch-free core in csrc/. Each op registers itself
// from its own bindings/<op>.cpp file.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "build_config.h"
#include "common/parallel.h"
#ifdef IVOS_WITH_CUDA
#include "common/cuda_info.h"
#endif

namespace py = pybind11;

void register_render_clicks(py::module_& m);
void register_dense_crf(py::module_& m);

PYBIND11_MODULE(_C, m) {
  m.doc() = "ivos native ops (C++ CPU, CUDA when compiled in)";
  m.def("compiled_with_cuda", [] {
#ifdef IVOS_WITH_CUDA
    return true;
#else
    return false;
#endif
  });
  m.def("build_config", [] {
    py::dict d;
    d["compiler"] = IVOS_COMPILER;
#ifdef IVOS_WITH_CUDA
    d["cuda"] = true;
    d["cuda_version"] = IVOS_CUDA_VERSION_STR;
    d["cuda_archs"] = IVOS_CUDA_ARCHS_STR;
#else
    d["cuda"] = false;
#endif
    return d;
  });
  m.def("default_num_threads", &ivos::default_num_threads);
  m.def("cuda_device_count", [] {
#ifdef IVOS_WITH_CUDA
    return ivos::cuda_device_count();
#else
    return 0;
#endif
  });
  m.def("cuda_device_name", [](int index) -> std::string {
#ifdef IVOS_WITH_CUDA
    return ivos::cuda_device_name(index);
#else
    (void)index;
    throw std::runtime_error("ivos was compiled without CUDA");
#endif
  });
  register_render_clicks(m);
  register_dense_crf(m);
}
