// CUDA device queries. Only compiled when the CUDA toolkit is found (IVOS_WITH_CUDA).
#pragma once

#include <string>

namespace ivos {

// Number of visible CUDA devices; 0 when there is no driver or no GPU (never throws).
int cuda_device_count();
// "name (sm_XY)" of device `index`; throws std::runtime_error on failure.
std::string cuda_device_name(int index);

}  // namespace ivos
