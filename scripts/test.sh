#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit, BPF packet tests, e2e lab tests) on
# this machine's kernel, then the BPF and e2e tests again on Debian 12's own kernel (6.1, no tcx)
# under qemu (scripts/test-kernel.sh). Needs root: the BPF and e2e tests load programs and build
# network namespaces. They fail, never skip, when a privilege or kernel feature is missing.
# Arguments go to ctest (the host run); the kernel run always runs every BPF and e2e test.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $EUID -ne 0 ]]; then echo "scripts/test.sh: run as root (BPF and network namespaces)" >&2; exit 1; fi
./scripts/install-deps.sh
./scripts/build.sh
status=0
(cd build && ctest --output-on-failure --timeout 600 "$@") || status=1
./scripts/test-kernel.sh build || status=1
exit $status
