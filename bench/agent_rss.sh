#!/usr/bin/env bash
# The agent's memory with the etcd datastore against the directory datastore, side by side in
# one run, at growing numbers of ClusterIP services (each with one EndpointSlice of 2 backends).
#
#   bench/agent_rss.sh                      # 1000 10000 50000 services
#   bench/agent_rss.sh --sizes "1000"       # override
#
# For each size and datastore: a one-node lab (`weir lab up --datastore dir|etcd --no-agent`;
# with etcd the lab runs its own member in the node namespace), the services applied through the
# lab (etcd: `weir apply`'s code, bounded transactions), the agent started, and, once `weir bpf
# nat dump` shows every frontend, the agent's VmRSS and VmHWM from /proc. Writes
# <out>/agent-rss.md and <out>/agent-rss.tsv (default out: bench/results). Needs root; the lab
# (namespaces, etcd, agent, pins) is removed on exit, failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=build OUT=bench/results SIZES="1000 10000 50000"
while [ $# -gt 0 ]; do
  case "$1" in
    --build) BUILD=$2; shift ;;
    --sizes) SIZES=$2; shift ;;
    --out) OUT=$2; shift ;;
    *) echo "usage: $0 [--build DIR] [--sizes LIST] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" = 0 ] || { echo "$0: needs root (network namespaces, bpf)" >&2; exit 1; }
[ -f "$BUILD/build.ninja" ] || scripts/build.sh weir >/dev/null
cmake --build "$BUILD" --target weir >/dev/null
WEIR=$(realpath "$BUILD/weir")
command -v etcd >/dev/null || { echo "$0: etcd missing (scripts/install-deps.sh)" >&2; exit 1; }

ID="rs$(printf '%04x' $(( ($$ + RANDOM) % 65536 )))"
WORK=$(mktemp -d "/run/weir-rss-$ID.XXXXXX")
LAB_UP=0
cleanup() {
  local rc=$?
  set +e
  if [ "$LAB_UP" = 1 ]; then "$WEIR" lab down --id "$ID" >"$WORK/down.log" 2>&1 || cat "$WORK/down.log" >&2; fi
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# N services 10.97.x.y:80 -> 8080, each with a slice of pod1 and pod2 (10.65.0.2, .3).
gen() {
  python3 - "$1" <<'PY'
import sys
n = int(sys.argv[1])
out = []
for i in range(n):
    out.append(f"""apiVersion: v1
kind: Service
metadata: {{name: s{i}}}
spec:
  clusterIP: 10.{97 + (i >> 16)}.{(i >> 8) & 255}.{(i & 255)}
  ports: [{{port: 80, name: http, targetPort: 8080}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: s{i}-1, labels: {{kubernetes.io/service-name: s{i}}}}}
addressType: IPv4
endpoints: [{{addresses: ["10.65.0.2"]}}, {{addresses: ["10.65.0.3"]}}]
ports: [{{name: http, port: 8080}}]
""")
sys.stdout.write("---\n".join(out))
PY
}

TSV="$WORK/agent-rss.tsv"
printf 'services\tdatastore\trss_kib\thwm_kib\tapply_s\tfirst_sync_s\n' >"$TSV"
for n in $SIZES; do
  gen "$n" >"$WORK/services.yaml"
  for ds in dir etcd; do
    log "$n services, datastore $ds"
    LAB_UP=1
    "$WEIR" lab up --id "$ID" --pods 2 --no-agent --datastore "$ds" >"$WORK/up.log"
    cat >"$WORK/dataplaneconfig.yaml" <<'YAML'
apiVersion: weir.dev/v1
kind: DataplaneConfig
metadata: {name: default}
spec:
  minSyncPeriod: 200ms
  serviceClusterIPRanges: [10.96.0.0/12]
  mapSizes: {natFrontend: 65536, natBackend: 262144}
YAML
    "$WEIR" lab apply --id "$ID" "$WORK/dataplaneconfig.yaml" >/dev/null
    t0=$(date +%s.%N)
    "$WEIR" lab apply --id "$ID" "$WORK/services.yaml" >/dev/null
    t1=$(date +%s.%N)
    "$WEIR" lab agent --id "$ID" start >/dev/null
    t2=$(date +%s.%N)
    pid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["agent"]["pid"])' "/run/weir-lab-$ID/state.json")
    # Every frontend programmed: the first sync is done.
    for _ in $(seq 1 600); do
      got=$("$WEIR" --pin-root "/sys/fs/bpf/weir-lab-$ID" bpf nat dump 2>/dev/null | grep -c ' port 80 proto 6 ' || true)
      [ "$got" -ge "$n" ] && break
      sleep 0.5
    done
    [ "$got" -ge "$n" ] || { echo "$0: the agent programmed $got of $n frontends (/run/weir-lab-$ID/agent.log)" >&2; exit 1; }
    t3=$(date +%s.%N)
    sleep 2  # let the agent settle (the conntrack scanner's first pass)
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
    hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
    printf '%s\t%s\t%s\t%s\t%.1f\t%.1f\n' "$n" "$ds" "$rss" "$hwm" \
      "$(echo "$t1 - $t0" | bc)" "$(echo "$t3 - $t2" | bc)" >>"$TSV"
    "$WEIR" lab down --id "$ID" >/dev/null
    LAB_UP=0
  done
done

mkdir -p "$OUT"
cp "$TSV" "$OUT/agent-rss.tsv"
python3 - "$TSV" "$OUT/agent-rss.md" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
by = {}
for r in rows:
    by.setdefault(int(r["services"]), {})[r["datastore"]] = r
lines = ["| services | dir: RSS / peak (MiB) | etcd: RSS / peak (MiB) | etcd / dir (RSS) | apply dir / etcd (s) | first sync dir / etcd (s) |",
         "|---:|---:|---:|---:|---:|---:|"]
mib = lambda k: int(k) / 1024
for n in sorted(by):
    d, e = by[n]["dir"], by[n]["etcd"]
    lines.append(f"| {n} | {mib(d['rss_kib']):.1f} / {mib(d['hwm_kib']):.1f} | {mib(e['rss_kib']):.1f} / {mib(e['hwm_kib']):.1f} "
                 f"| {int(e['rss_kib']) / int(d['rss_kib']):.2f} | {d['apply_s']} / {e['apply_s']} | {d['first_sync_s']} / {e['first_sync_s']} |")
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
