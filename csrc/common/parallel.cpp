#include "common/parallel.h"

#include <cstdlib>

namespace ivos {

int default_num_threads() {
  if (const char* env = std::getenv("IVOS_NUM_THREADS")) {
    int v = std::atoi(env);
    if (v >= 1) return v;
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

}  // namespace ivos
