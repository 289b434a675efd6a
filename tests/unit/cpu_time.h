// This thread's CPU time (CLOCK_THREAD_CPUTIME_ID), for tests that bound how long a computation
// takes: the test command runs the unit tests beside the 6.1 guest and clang-tidy on 2 cores,
// where wall-clock bounds failed for work that took a fraction of them (573 ms of wall clock
// for ~90 ms of CPU).
#pragma once

#include <chrono>
#include <ctime>

namespace weir::test {

inline std::chrono::nanoseconds thread_cpu_time() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

}  // namespace weir::test
