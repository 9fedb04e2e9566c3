// Placeholder until the render_clicks op lands (replaced by its real bindings).
#include <pybind11/pybind11.h>
void register_render_clicks(pybind11::module_& m) { (void)m; }
