#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit, BPF packet tests, e2e lab tests) on
# this machine's kernel, and the BPF and e2e tests again on Debian 12's own kernel (6.1, no tcx)
# under qemu (scripts/test-kernel.sh). Needs root: the BPF and e2e tests load programs and build
# network namespaces. They fail, never skip, when a privilege or kernel feature is missing.
# Arguments go to ctest (the host run); the kernel run always runs every BPF and e2e test.
#
# Then clang-tidy (scripts/tidy.sh: .clang-tidy's checks, any warning fails) and a sanitizer run
# (scripts/test-asan.sh: the unit and e2e tests built with ASan+UBSan in build-asan, any report
# fails).
#
# The kernel run takes the longest (TCG emulates the guest's CPUs): it starts as soon as the
# binaries it needs are built and runs while the rest builds and the host tests run. Its output
# goes to build/test-kernel.log (the guest's console to build/vm/<release>/console.log); its
# summary, with the failing tests and their messages, is printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $EUID -ne 0 ]]; then echo "scripts/test.sh: run as root (BPF and network namespaces)" >&2; exit 1; fi
./scripts/install-deps.sh
./scripts/build.sh weir weir_bpf_tests weir_e2e_tests
klog=build/test-kernel.log
echo "scripts/test.sh: Debian 12's kernel run started in the background (output: $klog)"
setsid -w ./scripts/test-kernel.sh build > "$klog" 2>&1 &
kpid=$!
# The kernel run is a process group of its own (qemu under timeout): stop all of it if this
# script stops early.
trap 'kill -- -$kpid 2>/dev/null || true' EXIT
status=0
./scripts/build.sh || status=1
if ((status == 0)); then
  (cd build && ctest --output-on-failure --timeout 600 "$@") || status=1
fi
# While the kernel run goes on: clang-tidy over weir's sources (any warning fails) and the unit
# and e2e tests again under ASan+UBSan (any report fails).
./scripts/tidy.sh build || status=1
./scripts/test-asan.sh || status=1
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
