#!/usr/bin/env bash
# Installs what is missing, builds, and runs the lab demo (see scripts/demo.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $EUID -ne 0 ]]; then echo "scripts/demo-run.sh: run as root (BPF and network namespaces)" >&2; exit 1; fi
./scripts/install-deps.sh
./scripts/build.sh
exec ./scripts/demo.sh ./build/weir
