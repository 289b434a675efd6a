#!/usr/bin/env bash
# Configures and builds weir with clang (binary, tests, benchmarks); with targets, only those
# (e.g. `scripts/build.sh weir weir_e2e_tests`).
#
#   scripts/build.sh [targets]              ./build: RelWithDebInfo (-O2 -g), what the demo, the
#                                           benchmarks and a node run
#   scripts/build.sh --sanitize [targets]   ./build-asan: ASan + UBSan, -O0 -g1, assertions on,
#                                           any finding ends the process; what the test command
#                                           builds and runs (scripts/test.sh, docs/checks.md)
#
# One compiler for both (clang, which also builds the BPF objects), so that the warnings the
# test command sees (-Wall -Wextra -Werror) are the ones the demo's build sees.
set -euo pipefail
cd "$(dirname "$0")/.."
cfg=(-G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++)
if [[ ${1:-} == --sanitize ]]; then
  shift
  dir=build-asan
  cfg+=(-DWEIR_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O0 -g1"
        -DCMAKE_C_FLAGS_DEBUG="-O0 -g1")
else
  dir=build
  cfg+=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
fi
cmake -S . -B "$dir" "${cfg[@]}" >/dev/null
if (($#)); then
  cmake --build "$dir" -j"$(nproc)" --target "$@"
else
  cmake --build "$dir" -j"$(nproc)"
fi
