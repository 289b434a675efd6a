#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit, BPF packet tests, e2e lab tests) on
# this machine's kernel, and the BPF and e2e tests again on Debian 12's own kernel (6.1, no tcx)
# under qemu (scripts/test-kernel.sh). clang-tidy (scripts/tidy.sh) is a command of its own, run
# before committing: its ~7 CPU-minutes no longer fit beside the two kernels' tests in the 20
# minutes this command has on 2 cores (docs/checks.md).
# Needs root: the BPF and e2e tests load programs and build network namespaces. They fail, never
# skip, when a privilege or kernel feature is missing. Arguments go to ctest (the host run); the
# kernel run always runs every BPF and e2e test.
#
# Everything runs from one build, ./build-asan (scripts/build.sh --sanitize): clang, ASan +
# UBSan, -O0. Any sanitizer report fails the command, even one from a weir process a test
# started and whose test passed: reports go to build-asan/sanitizer/ (on the host) and come back
# from the guest (build-asan/vm/<release>/results/sanitizer/), and both must stay empty.
#
# The kernel run takes the longest (TCG emulates the guest's CPUs): it starts as soon as the
# binaries it needs are built and runs while the rest builds and the host tests run, at a lower
# priority than the guest. Its output goes to build-asan/test-kernel.log (the guest's
# console to build-asan/vm/<release>/console.log); its summary, with the failing tests and their
# messages, is printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $EUID -ne 0 ]]; then echo "scripts/test.sh: run as root (BPF and network namespaces)" >&2; exit 1; fi
build=build-asan
./scripts/install-deps.sh
./scripts/build.sh --sanitize weir weir_bpf_tests weir_e2e_tests
klog=$build/test-kernel.log
echo "scripts/test.sh: Debian 12's kernel run started in the background (output: $klog)"
setsid -w ./scripts/test-kernel.sh "$build" > "$klog" 2>&1 &
kpid=$!
# A process group of its own (qemu under timeout): stopped if this script stops early.
trap 'kill -- -$kpid 2>/dev/null || true' EXIT
status=0
# The guest is the longest leg: what runs beside it on the host yields to it (the rest of the
# build and the host tests at nice 5).
# The test targets only: the benchmarks (bench/) are built by their own commands, in ./build.
nice -n 5 ./scripts/build.sh --sanitize weir weir_unit_tests weir_bpf_tests weir_e2e_tests || status=1
reports=$PWD/$build/sanitizer
rm -rf "$reports" && mkdir -p "$reports"
if ((status == 0)); then
  # halt_on_error: a finding ends its process (the test, or the weir it started, fails);
  # log_path: every report also lands in $reports, checked below.
  (cd "$build" &&
    ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:log_path=$reports/asan" \
    UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$reports/ubsan" \
    nice -n 5 ctest --output-on-failure --timeout 600 "$@") || status=1
fi
if compgen -G "$reports/*" >/dev/null; then
  echo "scripts/test.sh: sanitizer reports from the host run (in $reports):"
  for f in "$reports"/*; do echo "== $f"; head -n 60 "$f"; done
  status=1
fi
echo "scripts/test.sh: waiting for Debian 12's kernel run"
kstatus=0
wait $kpid || kstatus=$?
trap - EXIT
grep -a '^test-kernel:' "$klog" || true
if ((kstatus != 0)); then
  echo "scripts/test.sh: the run on Debian 12's kernel FAILED (exit status $kstatus): $klog"
  tail -n 30 "$klog" | grep -av '^test-kernel:' || true
  status=1
fi
exit $status
