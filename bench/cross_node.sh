#!/usr/bin/env bash
# Pod-to-pod TCP between nodes, routed against VXLAN, with the same-node path as the reference:
# connect/request/close rate (CRR, the lab client: one TCP connection per request) and bulk
# throughput (iperf3, Debian's package), side by side in one run.
#
#   bench/cross_node.sh [--rounds 3] [--crr 3000] [--seconds 5] [--build build] [--out bench/results]
#
# Two cluster labs are up at the same time (`weir lab up --nodes 2 --pods-per-node 2`, one with
# --encap none, one with --encap vxlan; the dir datastore). Each round measures, in this order,
# same node (n1-pod1 -> n1-pod2), routed across nodes (n1-pod1 -> n2-pod1) and VXLAN across
# nodes (n1-pod1 -> n2-pod1 of the VXLAN lab), so that the machine's noise spreads over all
# three; the figures are the medians over the rounds and the ratios are taken to the same-node
# figure of the routed lab (same-node traffic never leaves the node: the two labs' same-node
# paths are the same). Writes <out>/cross-node.md and <out>/cross-node.tsv. Needs root; the labs
# (namespaces, agents, pins, iperf3 servers) are removed on exit, failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=build OUT=bench/results ROUNDS=3 CRR=3000 SECONDS_=5
while [ $# -gt 0 ]; do
  case "$1" in
    --build) BUILD=$2; shift ;;
    --out) OUT=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --crr) CRR=$2; shift ;;
    --seconds) SECONDS_=$2; shift ;;
    *) echo "usage: $0 [--rounds N] [--crr N] [--seconds S] [--build DIR] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" = 0 ] || { echo "$0: needs root (network namespaces, bpf)" >&2; exit 1; }
command -v iperf3 >/dev/null || { echo "$0: iperf3 missing: apt-get install iperf3" >&2; exit 1; }
[ -f "$BUILD/build.ninja" ] || scripts/build.sh weir >/dev/null
cmake --build "$BUILD" --target weir >/dev/null
WEIR=$(realpath "$BUILD/weir")

TAG=$(printf '%04x' $(( ($$ + RANDOM) % 65536 )))
RT="cr$TAG" VX="cv$TAG"
WORK=$(mktemp -d "/run/weir-crossnode-$TAG.XXXXXX")
UP=()
IPERF_PIDS=()
cleanup() {
  local rc=$?
  set +e
  for p in "${IPERF_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for id in "${UP[@]}"; do "$WEIR" lab down --id "$id" >"$WORK/down-$id.log" 2>&1 || cat "$WORK/down-$id.log" >&2; done
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT INT TERM

for spec in "$RT none" "$VX vxlan"; do
  set -- $spec
  UP+=("$1")
  "$WEIR" lab up --id "$1" --nodes 2 --pods-per-node 2 --encap "$2" >"$WORK/up-$1.log" 2>&1 ||
    { cat "$WORK/up-$1.log" >&2; exit 1; }
  "$WEIR" lab server --id "$1" --pod n1-pod2 --tcp 8080 >/dev/null
  "$WEIR" lab server --id "$1" --pod n2-pod1 --tcp 8080 >/dev/null
done
ip_of() { "$WEIR" lab status --id "$1" | awk -v p="$2" '$1 == p {print $2}'; }

# crr LAB TARGET_POD: connections per second of `weir lab client` (one request each).
crr() {
  local ip t0 t1
  ip=$(ip_of "$1" "$2")
  t0=$(date +%s%N)
  "$WEIR" lab client --id "$1" --pod n1-pod1 --target "$ip:8080" --count "$CRR" >"$WORK/crr.out" ||
    { cat "$WORK/crr.out" >&2; echo "$0: CRR to $2 in lab $1 lost requests" >&2; exit 1; }
  t1=$(date +%s%N)
  echo $(( CRR * 1000000000 / (t1 - t0) ))
}

# tput LAB TARGET_POD: iperf3 Gbit/s from n1-pod1 (one stream, SECONDS_ s).
tput() {
  local ip ns_srv pid
  ip=$(ip_of "$1" "$2")
  ns_srv="weir-$1-$2"
  nsenter --net="/run/netns/$ns_srv" iperf3 -s -1 -p 5201 >"$WORK/iperf-s.log" 2>&1 &
  pid=$!
  IPERF_PIDS+=("$pid")
  sleep 0.3
  nsenter --net="/run/netns/weir-$1-n1-pod1" iperf3 -c "$ip" -p 5201 -t "$SECONDS_" -J >"$WORK/iperf.json" ||
    { cat "$WORK/iperf.json" >&2; exit 1; }
  wait "$pid" 2>/dev/null || true
  python3 -c 'import json,sys; print("%.2f" % (json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"] / 1e9))' "$WORK/iperf.json"
}

mkdir -p "$OUT"
TSV="$OUT/cross-node.tsv"
printf 'round\tpath\tcrr_per_s\tgbit_s\n' >"$TSV"
for r in $(seq 1 "$ROUNDS"); do
  for case in "same-node $RT n1-pod2" "routed $RT n2-pod1" "vxlan $VX n2-pod1"; do
    set -- $case
    c=$(crr "$2" "$3")
    g=$(tput "$2" "$3")
    printf '%s\t%s\t%s\t%s\n' "$r" "$1" "$c" "$g" >>"$TSV"
    echo "round $r $1: $c CRR/s, $g Gbit/s" >&2
  done
done

python3 - "$TSV" "$OUT/cross-node.md" "$ROUNDS" "$CRR" "$SECONDS_" <<'EOF'
import statistics, sys
tsv, md, rounds, crr, secs = sys.argv[1:]
rows = [l.rstrip("\n").split("\t") for l in open(tsv)][1:]
med = {}
for path in ("same-node", "routed", "vxlan"):
    rs = [r for r in rows if r[1] == path]
    med[path] = (statistics.median(float(r[2]) for r in rs), statistics.median(float(r[3]) for r in rs))
out = ["# Pod to pod across nodes: routed vs VXLAN (same node as the reference)", "",
       f"`bench/cross_node.sh --rounds {rounds} --crr {crr} --seconds {secs}`: two 2-node cluster labs "
       "side by side, medians over the rounds; CRR = TCP connect/request/close per second of the lab "
       f"client ({crr} connections), throughput = iperf3, one stream, {secs} s.", "",
       "| path | CRR/s | vs same node | Gbit/s | vs same node |", "|---|---|---|---|---|"]
for path in ("same-node", "routed", "vxlan"):
    c, g = med[path]
    out.append(f"| {path} | {c:.0f} | {c / med['same-node'][0]:.2f} | {g:.2f} | {g / med['same-node'][1]:.2f} |")
out += ["", f"VXLAN vs routed: CRR {med['vxlan'][0] / med['routed'][0]:.2f}, throughput "
        f"{med['vxlan'][1] / med['routed'][1]:.2f}."]
open(md, "w").write("\n".join(out) + "\n")
print("\n".join(out))
EOF
