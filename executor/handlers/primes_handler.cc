// `primes`: counts the primes in [start, end) with a segmented sieve of odd
// numbers. CPU-bound reference work; reports progress and checks cancellation
// between segments.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "executor/handlers/handler.h"

namespace tessera::executor {
namespace {

// end <= 10^14 keeps the base primes (up to sqrt(end) = 10^7) small.
constexpr int64_t kMaxEnd = 100'000'000'000'000;
// Odd numbers per segment (the segment covers twice as many integers); fits L1/L2.
constexpr int64_t kSegment = 1 << 15;

int64_t ISqrt(int64_t n) {
  int64_t r = static_cast<int64_t>(std::sqrt(static_cast<double>(n)));
  while (r * r > n) --r;
  while ((r + 1) * (r + 1) <= n) ++r;
  return r;
}

// Odd primes <= limit (simple sieve).
std::vector<int64_t> OddPrimesUpTo(int64_t limit) {
  std::vector<int64_t> primes;
  if (limit < 3) return primes;
  std::vector<char> composite(limit + 1, 0);
  char* c = composite.data();  // raw pointer: fast in -O0 builds too
  for (int64_t i = 3; i <= limit; i += 2) {
    if (c[i]) continue;
    primes.push_back(i);
    for (int64_t j = i * i; j <= limit; j += 2 * i) c[j] = 1;
  }
  return primes;
}

class PrimesHandler : public Handler {
 public:
  absl::StatusOr<nlohmann::json> Run(const ShardTask& task, ProgressReporter& progress,
                                     const CancelToken& cancel) override {
    if (task.end > kMaxEnd) {
      return absl::InvalidArgumentError(
          absl::StrCat("primes: end must be <= ", kMaxEnd, " (got ", task.end, ")"));
    }
    const int64_t total = task.end - task.start;
    const int64_t lo = std::max<int64_t>(task.start, 2);
    int64_t count = 0;
    if (lo <= 2 && task.end > 2) ++count;  // the only even prime
    if (task.end <= lo) return nlohmann::json{{"primes", count}};

    const std::shared_ptr<const std::vector<int64_t>> base =
        BasePrimes(ISqrt(task.end - 1));
    const int64_t* bp = base->data();
    const size_t nbase = base->size();
    std::vector<char> segment(kSegment);
    char* seg = segment.data();

    // seg[j] stands for the odd number first + 2j.
    for (int64_t first = lo | 1; first < task.end; first += 2 * kSegment) {
      if (cancel.cancelled()) return absl::CancelledError("primes cancelled");
      const int64_t n = std::min(kSegment, (task.end - first + 1) / 2);
      const int64_t last = first + 2 * (n - 1);
      std::memset(seg, 1, n);
      for (size_t k = 0; k < nbase; ++k) {
        const int64_t p = bp[k];
        if (p * p > last) break;
        int64_t m = std::max(p * p, (first + p - 1) / p * p);
        if (m % 2 == 0) m += p;
        for (int64_t j = (m - first) / 2; j < n; j += p) seg[j] = 0;
      }
      if (first == 1) seg[0] = 0;  // 1 is not prime
      for (int64_t j = 0; j < n; ++j) count += seg[j];
      progress.Report(std::min(last + 1, task.end) - task.start, total);
    }
    return nlohmann::json{{"primes", count}};
  }

 private:
  // Shared between concurrent shards; grows (doubling) when a larger range comes.
  std::shared_ptr<const std::vector<int64_t>> BasePrimes(int64_t limit) {
    absl::MutexLock lock(&mu_);
    if (limit > base_limit_) {
      base_limit_ = std::min(std::max(limit, 2 * base_limit_), ISqrt(kMaxEnd));
      base_ = std::make_shared<const std::vector<int64_t>>(OddPrimesUpTo(base_limit_));
    }
    return base_;
  }

  absl::Mutex mu_;
  int64_t base_limit_ ABSL_GUARDED_BY(mu_) = 0;
  std::shared_ptr<const std::vector<int64_t>> base_ ABSL_GUARDED_BY(mu_) =
      std::make_shared<const std::vector<int64_t>>();
};

}  // namespace

std::unique_ptr<Handler> NewPrimesHandler() { return std::make_unique<PrimesHandler>(); }

}  // namespace tessera::executor
