#!/usr/bin/env bash
# Builds weir, its unit tests and its e2e tests with AddressSanitizer and UndefinedBehaviorSanitizer
# (WEIR_SANITIZE=ON, in ./build-asan: -O0 -g1, assertions on) and runs them; the e2e tests exec
# the sanitized weir binary, so the agent and the CLI are checked too. Any sanitizer report, in a
# test binary or in a weir process it started, fails the run: every finding halts its process
# (-fno-sanitize-recover=all, halt_on_error) and is written to build-asan/sanitizer/, which must
# stay empty. Needs root (the e2e tests build lab namespaces). Arguments go to ctest (e2e run).
set -euo pipefail
cd "$(dirname "$0")/.."
build=build-asan
cmake -S . -B "$build" -G Ninja -DWEIR_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_CXX_FLAGS_DEBUG="-O0 -g1" -DCMAKE_C_FLAGS_DEBUG="-O0 -g1" >/dev/null
cmake --build "$build" -j"$(nproc)" --target weir weir_unit_tests weir_e2e_tests
reports=$PWD/$build/sanitizer
rm -rf "$reports" && mkdir -p "$reports"
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:log_path=$reports/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$reports/ubsan"
status=0
# The unit tests in one process (cheaper than ctest's process per test under ASan), the e2e
# tests through ctest (one process per test, with its timeout).
"$build"/weir_unit_tests --gtest_brief=1 || status=1
(cd "$build" && ctest --output-on-failure --timeout 600 -L '^e2e$' "$@") || status=1
if compgen -G "$reports/*" >/dev/null; then
  echo "scripts/test-asan.sh: sanitizer reports (in $reports):"
  for f in "$reports"/*; do echo "== $f"; head -n 60 "$f"; done
  status=1
fi
((status == 0)) && echo "scripts/test-asan.sh: no sanitizer report"
exit $status
