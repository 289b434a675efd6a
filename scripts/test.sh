#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit, BPF packet tests, e2e lab tests).
# Needs root: the BPF and e2e tests load programs and build network namespaces. They fail,
# never skip, when a privilege or kernel feature is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $EUID -ne 0 ]]; then echo "scripts/test.sh: run as root (BPF and network namespaces)" >&2; exit 1; fi
./scripts/install-deps.sh
./scripts/build.sh
cd build
ctest --output-on-failure --timeout 600 "$@"
