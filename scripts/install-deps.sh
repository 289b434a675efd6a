#!/usr/bin/env bash
# Installs what weir needs to build, test and run on Debian 12 (as root). Idempotent: only
# packages that are missing are installed.
set -euo pipefail
pkgs=(
  build-essential cmake ninja-build pkg-config git
  clang clang-tidy llvm libbpf-dev bpftool libelf-dev zlib1g-dev
  libyaml-cpp-dev nlohmann-json3-dev libcli11-dev libfmt-dev libspdlog-dev
  libgtest-dev libgmock-dev libbenchmark-dev libpcap-dev libnl-3-dev libnl-route-3-dev
  iproute2 iptables nftables gnuplot-nox python3
  # the e2e scrape of `weir agent --metrics-listen` (and an operator's)
  curl
  # the etcd datastore's tests and `weir lab up --datastore etcd` start their own members
  etcd-server
  # scripts/test-kernel.sh: Debian 12's kernel under qemu, with an initramfs of the build
  qemu-system-x86 busybox-static cpio util-linux binutils
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
