// Minimal parallel-for over an index range on a persistent thread pool (no OpenMP
// dependency). Work is split into contiguous chunks that the calling thread and the pool's
// workers claim one at a time, so a worker the OS has not scheduled yet never holds up the
// call: the caller simply runs that chunk itself. Small ranges run inline.
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>

namespace ivos {

// Number of worker threads the ops use by default: hardware concurrency, overridable with
// the IVOS_NUM_THREADS environment variable (>= 1).
int default_num_threads();

namespace detail {

// Runs task(ctx, c) for every chunk c in [0, chunks), on the calling thread and up to
// threads - 1 pool workers; returns when all chunks are done and rethrows the first
// exception a chunk threw. Runs every chunk on the calling thread when the pool is already
// busy (a nested call, or a call from another thread at the same time): those calls stay
// correct, just not parallel.
void run_chunks(int64_t chunks, int threads, void (*task)(void*, int64_t), void* ctx);

}  // namespace detail

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
  struct Context {
    Fn& fn;
    int64_t n, chunk;
  } ctx{fn, n, (n + threads - 1) / threads};
  const auto task = [](void* p, int64_t c) {
    Context& x = *static_cast<Context*>(p);
    const int64_t b = c * x.chunk;
    x.fn(b, std::min(x.n, b + x.chunk));
  };
  detail::run_chunks((n + ctx.chunk - 1) / ctx.chunk, threads, task, &ctx);
}

}  // namespace ivos
