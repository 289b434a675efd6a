// Command line shared by the BPF_PROG_TEST_RUN benchmarks (weir_bench, weir_policy_bench):
//   --repeat N  repetitions per BPF_PROG_TEST_RUN where the path does not rewrite the packet
//   --runs M    separate repeat=1 runs (paths that rewrite, or that must see distinct inputs)
//   --cpu C     CPU the benchmark pins itself to (per-CPU maps, stable caches)
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

namespace weir::bench {

struct Options {
  int repeat = 1'000'000;
  int runs = 20'000;
  int cpu = 0;
};

[[noreturn]] inline void die(const char* prog, const std::string& what) {
  std::fprintf(stderr, "%s: %s\n", prog, what.c_str());
  std::exit(1);
}

inline Options parse_options(int argc, char** argv, const char* prog) {
  Options opt;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto next = [&]() -> int {
      if (i + 1 >= argc) die(prog, "missing value after " + a);
      return std::atoi(argv[++i]);
    };
    if (a == "--repeat") {
      opt.repeat = next();
    } else if (a == "--runs") {
      opt.runs = next();
    } else if (a == "--cpu") {
      opt.cpu = next();
    } else {
      die(prog, "unknown argument " + a + " (usage: " + prog + " [--repeat N] [--runs M] [--cpu C])");
    }
  }
  if (opt.repeat < 1 || opt.runs < 1) die(prog, "--repeat and --runs must be >= 1");
  return opt;
}

}  // namespace weir::bench
