// Minimal parallel-for over an index range with std::thread (no OpenMP dependency).
// Work is split into contiguous chunks, one per thread; small ranges run inline.
#pragma once

#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

namespace ivos {

// Number of worker threads the ops use by default: hardware concurrency, overridable with
// the IVOS_NUM_THREADS environment variable (>= 1).
int default_num_threads();

// Calls fn(begin, end) on disjoint chunks covering [0, n). Runs inline when n < min_chunk * 2
// or num_threads <= 1. fn must be thread-safe for disjoint ranges.
template <typename Fn>
void parallel_for(int64_t n, int64_t min_chunk, int num_threads, Fn&& fn) {
  if (n <= 0) return;
  int64_t max_threads = std::max<int64_t>(1, n / std::max<int64_t>(1, min_chunk));
  int threads = static_cast<int>(std::min<int64_t>(std::max(1, num_threads), max_threads));
  if (threads <= 1) {
    fn(int64_t{0}, n);
    return;
  }
  std::vector<std::thread> workers;
  workers.reserve(threads - 1);
  int64_t chunk = (n + threads - 1) / threads;
  for (int t = 1; t < threads; ++t) {
    int64_t b = t * chunk, e = std::min(n, b + chunk);
    if (b >= e) break;
    workers.emplace_back([&fn, b, e] { fn(b, e); });
  }
  fn(int64_t{0}, std::min(n, chunk));
  for (auto& w : workers) w.join();
}

}  // namespace ivos
