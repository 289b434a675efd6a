#!/usr/bin/env bash
# Service-scaling benchmark: weir against kube-proxy's iptables and nftables modes, one after
# the other on the same lab topology, at growing numbers of ClusterIP services.
#
#   bench/scaling.sh --quick     # 1, 100, 1000 services (a few minutes)
#   bench/scaling.sh --full      # 1, 100, 1000, 10000, 50000 services
#
# Options: --build DIR (default build; the targets weir and weir_svc_load are built there first),
#          --sizes "1 100" (override), --runs R, --duration S, --out DIR (default bench/results),
#          --iptables-max N / --nftables-max N (largest size run in those modes; default: all),
#          --iptables-backend legacy|nft (which iptables-restore: default legacy, see below),
#          --rt (load generator and servers at SCHED_FIFO 10: use it on a shared machine).
# If the script is SIGKILLed, remove its lab with `weir lab down --id <id>` (id in its log).
# Writes <out>/scaling-<mode>.md, <out>/scaling-<mode>-*.png and <out>/scaling-<mode>.tsv.
# Needs root. Everything lives in the lab's namespaces (weir-<id>-*); the lab, the servers and
# the agent are removed on exit, failure or Ctrl-C (trap), by the lab's own record.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=quick BUILD=build OUT=bench/results SIZES="" RUNS="" DURATION="" IPT_MAX="" NFT_MAX="" RT=0
IPT_BACKEND=legacy
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) MODE=quick ;;
    --full) MODE=full ;;
    --build) BUILD=$2; shift ;;
    --sizes) SIZES=$2; shift ;;
    --runs) RUNS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --out) OUT=$2; shift ;;
    --iptables-max) IPT_MAX=$2; shift ;;
    --nftables-max) NFT_MAX=$2; shift ;;
    --iptables-backend) IPT_BACKEND=$2; shift ;;
    --rt) RT=1 ;;
    *) echo "usage: $0 [--quick|--full] [--build DIR] [--sizes LIST] [--runs R] [--duration S] [--out DIR] [--iptables-max N] [--nftables-max N] [--iptables-backend legacy|nft] [--rt]" >&2; exit 2 ;;
  esac
  shift
done
if [ "$MODE" = quick ]; then
  : "${SIZES:=1 100 1000}" "${RUNS:=3}" "${DURATION:=2}"
else
  : "${SIZES:=1 100 1000 10000 50000}" "${RUNS:=5}" "${DURATION:=2}"
fi
# iptables mode uses iptables-legacy-restore by default: iptables-nft 1.8.9 (Debian 12's)
# looks chains up by a linear strcmp walk, so its restore of 10,000 services (~70,000 chains)
# had read 10 of its 29 MB after 15 min; the legacy backend loads it in ~6 s. Both are what
# kube-proxy runs (its image has both and follows the host). The legacy tables are built into
# this kernel and per network namespace: nothing outside the lab's node namespace changes.
# --iptables-backend nft measures iptables-nft (only sensible up to ~2,000 services).
# nftables mode loads up to 10,000 services in one transaction as kube-proxy does; above that
# in transactions of 2,500 services (the kernel's cost per transaction grows with its square,
# see svc_load.cpp), reported in the results.
: "${IPT_MAX:=1000000}" "${NFT_MAX:=1000000}"
case "$IPT_BACKEND" in legacy|nft) ;; *) echo "$0: --iptables-backend: legacy or nft" >&2; exit 2 ;; esac
[ "$(id -u)" = 0 ] || { echo "$0: needs root (network namespaces, nft, bpf)" >&2; exit 1; }
# Build (or bring up to date) the two binaries it runs, so that this one command reproduces
# everything on a checkout.
[ -f "$BUILD/build.ninja" ] || [ -f "$BUILD/Makefile" ] ||
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" --target weir weir_svc_load >/dev/null
WEIR=$(realpath "$BUILD/weir")
LOAD=$(realpath "$BUILD/weir_svc_load")
for b in "$WEIR" "$LOAD"; do [ -x "$b" ] || { echo "$0: $b missing after the build" >&2; exit 1; }; done
for t in iptables-$IPT_BACKEND-restore iptables-$IPT_BACKEND-save nft nsenter taskset gnuplot python3; do
  command -v $t >/dev/null || { echo "$0: $t missing (scripts/install-deps.sh)" >&2; exit 1; }
done

ID="sc$(printf '%04x' $(( ($$ + RANDOM) % 65536 )))"
WORK=$(mktemp -d "/run/weir-scaling-$ID.XXXXXX")
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

START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

NPODS=11  # pod1 runs the load generator, pod2..pod11 the servers
log "lab $ID: $NPODS pods, no agent"
LAB_UP=1
"$WEIR" lab up --id "$ID" --pods $NPODS --no-agent >"$WORK/up.log"
NODE=/run/netns/weir-$ID-node
POD1=/run/netns/weir-$ID-pod1
STATE=/run/weir-lab-$ID/state.json
DATASTORE=/run/weir-lab-$ID/datastore

# weir's NAT backend map holds 256Ki backends by default; 50,000 services of 2-10 backends
# need ~300Ki: the same larger size at every size (DataplaneConfig mapSizes), written before the
# agent first starts (sizes apply when the maps are created).
cat >"$DATASTORE/.dataplaneconfig.yaml.tmp" <<'YAML'
apiVersion: weir.dev/v1
kind: DataplaneConfig
metadata:
  name: default
spec:
  minSyncPeriod: 200ms
  logLevel: info
  mapSizes:
    natFrontend: 65536
    natBackend: 524288
YAML
mv "$DATASTORE/.dataplaneconfig.yaml.tmp" "$DATASTORE/dataplaneconfig.yaml"

# ~15,000 new connections a second would fill the machine-wide conntrack table (262144
# entries, TIME_WAIT kept 120 s) during the iptables/nftables phases: shorter TIME_WAIT in the
# node namespace only (weir's flows do not go through netfilter).
nsenter --net="$NODE" sysctl -q -w net.netfilter.nf_conntrack_tcp_timeout_time_wait=5

# The client reuses ports quickly: a wide port range, TIME_WAIT reuse (its own netns only).
nsenter --net="$POD1" sysctl -q -w net.ipv4.ip_local_port_range="1024 65535" net.ipv4.tcp_tw_reuse=1
# Servers on CPU 0, the load generator on CPU 1 (when there are 2 CPUs or more).
NCPU=$(nproc)
SRV_CPU=0 CLI_CPU=$(( NCPU > 1 ? 1 : 0 ))
SERVERS=""
for i in $(seq 2 $NPODS); do
  out=$("$WEIR" lab server --id "$ID" --pod pod$i --tcp 8080)
  pid=$(sed -n 's/.*(pid \([0-9]*\)).*/\1/p' <<<"$out")
  [ -n "$pid" ] || { echo "$0: no pid in: $out" >&2; exit 1; }
  taskset -p -c $SRV_CPU "$pid" >/dev/null
  # --rt: servers and client at SCHED_FIFO 10, so that other jobs on a shared machine do not
  # preempt them (the kernel's RT throttling still leaves those 5 % of each CPU).
  if [ "$RT" = 1 ]; then chrt -f -p 10 "$pid" >/dev/null; fi
  SERVERS="$SERVERS${SERVERS:+,}10.65.0.$((i + 1))"
done

RTCMD=()
if [ "$RT" = 1 ]; then RTCMD=(chrt -f 10); fi
TSV="$WORK/results.tsv"
printf 'services\tdataplane\tmetric\tvalue\n' >"$TSV"
RAW="$WORK/raw.log"
: >"$RAW"
# key=value lines -> TSV rows for (size, dataplane); load lines are reduced to their median.
record() {  # size dp file
  awk -v n="$1" -v dp="$2" '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] != "dataplane" && kv[1] != "services" && kv[1] != "run" && kv[2] ~ /^-?[0-9.]+$/) print n "\t" dp "\t" kv[1] "\t" kv[2] } }' "$3" >>"$TSV"
}
record_median() {  # size dp file: per-run lines -> median per key
  awk -v n="$1" -v dp="$2" '
    { for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] != "run") { v[kv[1], ++c[kv[1]]] = kv[2]; keys[kv[1]] = 1 } } }
    END { for (k in keys) { m = c[k]; for (i = 1; i <= m; i++) a[i] = v[k, i] + 0;
            for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
            med = (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2;
            print n "\t" dp "\t" k "\t" med } }' "$3" >>"$TSV"
}

node_flush() {
  nsenter --net="$NODE" nft flush ruleset
  if [ "$IPT_BACKEND" = legacy ]; then
    for t in nat filter; do
      nsenter --net="$NODE" iptables-legacy -t $t -F
      nsenter --net="$NODE" iptables-legacy -t $t -X
    done
  fi
}

SEED=1
for N in $SIZES; do
  for DP in iptables nftables weir; do
    MAX=$IPT_MAX; [ $DP = nftables ] && MAX=$NFT_MAX
    if [ $DP != weir ] && [ "$N" -gt "$MAX" ]; then
      log "$N services: $DP skipped (--$DP-max $MAX)"
      printf '%s\t%s\tskipped\t1\n' "$N" $DP >>"$TSV"
      continue
    fi
    log "$N services: $DP"
    EXTRA=()
    if [ $DP = iptables ]; then EXTRA=(--iptables "$IPT_BACKEND"); fi
    if [ $DP = weir ]; then
      "$WEIR" lab agent --id "$ID" start >/dev/null
      AGENT_PID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["agent"]["pid"])' "$STATE")
      # The agent attaches its programs at its first sync; wait until every pod has them.
      attached() { [ "$("$WEIR" lab status --id "$ID" 2>/dev/null | grep -c 'weir_from_wl')" -ge $NPODS ]; }
      for _ in $(seq 100); do attached && break; sleep 0.1; done
      attached || { echo "$0: the agent did not attach to every pod in 10 s (/run/weir-lab-$ID/agent.log)" >&2; exit 1; }
      EXTRA=(--datastore "$DATASTORE" --pin-root "/sys/fs/bpf/weir-lab-$ID" --agent-pid "$AGENT_PID")
    fi
    f="$WORK/$N-$DP"
    # Big sets: fewer of the expensive syncs (iptables' full re-restore costs an apply).
    SYNC_RUNS=$RUNS FULL_SYNC_RUNS=$RUNS
    # The whole set is applied RUNS times from scratch up to 1,000 services, once above (an
    # apply costs seconds to minutes there).
    APPLY_RUNS=$RUNS; [ "$N" -gt 1000 ] && APPLY_RUNS=1
    # At 10,000 and more: 3 one-service changes; for iptables one full re-restore (it costs
    # about what the apply costs: ~1.5 min at 50,000) and 3 partial syncs.
    if [ "$N" -ge 10000 ]; then SYNC_RUNS=$(( RUNS < 3 ? RUNS : 3 )) FULL_SYNC_RUNS=1; fi
    t0=$(date +%s.%N)
    nsenter --net="$NODE" "$LOAD" apply --dataplane $DP --services "$N" --servers "$SERVERS" \
      --work-dir "$WORK" --apply-runs "$APPLY_RUNS" --sync-runs "$SYNC_RUNS" --full-sync-runs "$FULL_SYNC_RUNS" "${EXTRA[@]}" >"$f.apply"
    record "$N" $DP "$f.apply"
    nsenter --net="$POD1" "${RTCMD[@]}" "$LOAD" load --services "$N" --mode conn --duration "$DURATION" \
      --runs "$RUNS" --cpu $CLI_CPU --seed $SEED >"$f.conn" 2>"$f.conn.err"
    record_median "$N" $DP "$f.conn"
    nsenter --net="$POD1" "${RTCMD[@]}" "$LOAD" load --services "$N" --mode rr --duration "$DURATION" \
      --runs "$RUNS" --cpu $CLI_CPU --seed $SEED --conns 16 >"$f.rr" 2>"$f.rr.err"
    record_median "$N" $DP "$f.rr"
    { echo "== $N $DP"; cat "$f.apply" "$f.conn" "$f.conn.err" "$f.rr" "$f.rr.err"; } >>"$RAW"
    if [ $DP = weir ]; then
      { echo "-- agent log (syncs):"; grep -E "applying|sync done|error|warn" "/run/weir-lab-$ID/agent.log" | tail -20; } >>"$RAW"
      rm -f "$DATASTORE"/svc-*.yaml
      "$WEIR" lab agent --id "$ID" stop >/dev/null
      "$WEIR" lab bpf --id "$ID" cleanup >/dev/null
    else
      node_flush
    fi
    log "$N services: $DP done in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
  done
  SEED=$((SEED + 1))  # one traffic sequence per size, the same for the three dataplanes
done
END=$(date +%s)

mkdir -p "$OUT"
cp "$TSV" "$OUT/scaling-$MODE.tsv"
cp "$RAW" "$OUT/scaling-$MODE-raw.log"
python3 bench/scaling_report.py --tsv "$OUT/scaling-$MODE.tsv" --out "$OUT" --mode "$MODE" \
  --seconds $((END - START)) --runs "$RUNS" --duration "$DURATION" \
  --load "start $LOAD_START, end $(cut -d' ' -f1-3 /proc/loadavg)" --kernel "$(uname -r)" \
  --cpus "$NCPU" --rt "$RT" --iptables "$(iptables-$IPT_BACKEND --version)" --nft "$(nft --version)"
log "done in $((END - START)) s: $OUT/scaling-$MODE.md"
