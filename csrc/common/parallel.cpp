#include "common/parallel.h"

#include <pthread.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace ivos {

int default_num_threads() {
  if (const char* env = std::getenv("IVOS_NUM_THREADS")) {
    int v = std::atoi(env);
    if (v >= 1) return v;
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

namespace detail {
namespace {

// One parallel_for call: chunks are claimed through `next`.
struct Job {
  Job(void (*t)(void*, int64_t), void* c, int64_t n) : task(t), ctx(c), chunks(n) {}

  void (*task)(void*, int64_t);
  void* ctx;
  int64_t chunks;
  std::atomic<int64_t> next{0};
  std::mutex error_mutex;
  std::exception_ptr error;

  // Claims and runs chunks until none is left.
  void work() {
    for (int64_t c; (c = next.fetch_add(1, std::memory_order_relaxed)) < chunks;) {
      try {
        task(ctx, c);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
      }
    }
  }
};

// Waits up to `budget` for done() to turn true without sleeping, yielding the core between
// checks: on a loaded machine the yield hands it to whoever else is runnable, where a pausing
// loop would hold it for the whole wait. Returns done().
template <typename Done>
bool wait_awake(Done done, std::chrono::microseconds budget) {
  const auto until = std::chrono::steady_clock::now() + budget;
  while (!done()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::yield();
  }
  return true;
}

// Workers sleep on a condition variable, after waiting briefly awake: an op issues its
// parallel loops back to back (a dense CRF call ~20 within 30 ms), and waking a sleeping
// thread costs far more than that on a VM whose idle vCPU was descheduled (measured: a
// 480x854 dense CRF call took 42 instead of 30 ms on 2 vCPUs after 100 ms idle, the second
// thread arriving too late for most loops). The awake wait yields the core and lasts 200 us,
// so a waiting worker never keeps a core that other work needs (see wait_awake). One job at
// a time, guarded by `busy_`.
class ThreadPool {
 public:
  void run(int64_t chunks, int threads, void (*task)(void*, int64_t), void* ctx) {
    Job job{task, ctx, chunks};
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock()) {
      job.work();  // nested or concurrent call: inline
    } else {
      start_workers(threads - 1);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        job_ = &job;
        ++generation_;
      }
      wake_.notify_all();
      job.work();
      // Close the job: workers that wake up from now on find nothing; wait for those
      // still inside it (they may be running a chunk they claimed).
      std::unique_lock<std::mutex> lock(mutex_);
      job_ = nullptr;
      if (active_ > 0) {
        lock.unlock();
        wait_awake([this] { return active_.load(std::memory_order_acquire) == 0; }, kAwakeWait);
        lock.lock();
      }
      idle_.wait(lock, [this] { return active_ == 0; });
    }
    if (job.error) std::rethrow_exception(job.error);
  }

 private:
  // Grows the pool to `count` workers (it never shrinks). Called with busy_ held.
  void start_workers(int count) {
    count = std::min(count, kMaxWorkers);
    while (static_cast<int>(workers_.size()) < count) workers_.emplace_back([this] { worker_loop(); });
  }

  void worker_loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    uint64_t seen = generation_;
    for (;;) {
      if (generation_ == seen) {
        lock.unlock();
        wait_awake([&] { return generation_.load(std::memory_order_acquire) != seen; }, kAwakeWait);
        lock.lock();
      }
      wake_.wait(lock, [&] { return generation_ != seen; });
      seen = generation_;
      Job* job = job_;
      if (job == nullptr) continue;
      ++active_;
      lock.unlock();
      job->work();
      lock.lock();
      if (--active_ == 0) idle_.notify_one();
    }
  }

  static constexpr int kMaxWorkers = 256;
  static constexpr std::chrono::microseconds kAwakeWait{200};
  std::mutex busy_;   // held by the thread whose job the pool runs
  std::mutex mutex_;  // guards job_, generation_, active_
  std::condition_variable wake_, idle_;
  Job* job_ = nullptr;
  // Written under mutex_; atomic so that threads waiting awake may read them without it.
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> active_{0};  // workers inside job_
  std::vector<std::thread> workers_;
};

// Never destroyed: joining workers from a static destructor at interpreter exit can hang,
// and the OS ends them anyway.
ThreadPool* g_pool = nullptr;
std::once_flag g_pool_once;

ThreadPool& pool() {
  std::call_once(g_pool_once, [] {
    g_pool = new ThreadPool;
    // A forked child has none of the workers (and maybe a mutex locked by one): give it
    // a fresh pool, leaking the parent's copy.
    pthread_atfork(nullptr, nullptr, [] { g_pool = new ThreadPool; });
  });
  return *g_pool;
}

}  // namespace

void run_chunks(int64_t chunks, int threads, void (*task)(void*, int64_t), void* ctx) {
  pool().run(chunks, threads, task, ctx);
}

}  // namespace detail
}  // namespace ivos
