// Stage timing for optional profiles: a Stopwatch that reads the clock only when profiling
// is on, so the hot paths pay one branch per stage when it is off.
#pragma once

#include <chrono>

namespace ivos {

class Stopwatch {
 public:
  explicit Stopwatch(bool on) : on_(on) {
    if (on_) last_ = std::chrono::steady_clock::now();
  }

  // Adds the milliseconds since the previous lap (or construction) to *total (when set).
  void lap(double* total) {
    if (!on_) return;
    const auto now = std::chrono::steady_clock::now();
    if (total != nullptr) *total += std::chrono::duration<double, std::milli>(now - last_).count();
    last_ = now;
  }

 private:
  bool on_;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace ivos
