#!/usr/bin/env bash
# Configures and builds weir (binary, tests, benchmarks) into ./build; with arguments, only those
# targets (e.g. `scripts/build.sh weir weir_e2e_tests`).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
if (($#)); then
  cmake --build build -j"$(nproc)" --target "$@"
else
  cmake --build build -j"$(nproc)"
fi
