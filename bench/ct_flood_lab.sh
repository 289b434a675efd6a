#!/bin/bash
# The agent under a conntrack flood, in a lab: fills the default 512Ki-entry table with
# SYN-flood flows through a ClusterIP service (4 pods x 64,000 SYNs = 512,000 entries: a NAT
# pair per SYN), then samples the agent's CPU use (utime + stime from /proc/<pid>/stat) and
# resident memory (VmRSS, VmHWM) while its scanner runs. Everything lives in the lab's
# namespaces and pin root, removed on exit. Root needed. Figures: bench/README.md.
#
#   sudo bench/ct_flood_lab.sh [path/to/weir] [seconds to sample, default 60]
#
# The weir given runs the lab and the agent; `lab flood` and `bpf conntrack stats` come from
# $WEIR_TOOLS (default: the same binary), so that an older agent without them can be measured:
#   sudo WEIR_TOOLS=build/weir bench/ct_flood_lab.sh /path/to/old/weir
set -euo pipefail

WEIR=$(realpath "${1:-build/weir}")
TOOLS=$(realpath "${WEIR_TOOLS:-$WEIR}")
SECONDS_TO_SAMPLE=${2:-60}
ID=ctf$$
TMP=$(mktemp -d /tmp/weir-ctflood-XXXXXX)
trap '"$WEIR" lab down --id "$ID" >/dev/null 2>&1 || true; rm -rf "$TMP"' EXIT

"$WEIR" lab up --pods 5 --id "$ID" --no-agent >/dev/null
cat >"$TMP/dataplaneconfig.yaml" <<'EOF'
apiVersion: weir.dev/v1
kind: DataplaneConfig
metadata: {name: default}
spec:
  minSyncPeriod: 200ms
  conntrackScanPeriod: 1s
EOF
cat >"$TMP/svc.yaml" <<'EOF'
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.0.10
  ports: [{name: http, protocol: TCP, port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, protocol: TCP, port: 8080}]
endpoints:
- addresses: ["10.65.0.6"]
  conditions: {ready: true}
EOF
"$WEIR" lab apply --id "$ID" "$TMP/dataplaneconfig.yaml" "$TMP/svc.yaml" >/dev/null
"$WEIR" lab agent --id "$ID" start >/dev/null
"$WEIR" lab server --id "$ID" --pod pod5 --tcp 8080 >/dev/null
sleep 2
PID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["agent"]["pid"])' "/run/weir-lab-$ID/state.json")
HZ=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
status() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$PID/status"; }
echo "agent pid $PID before the flood: VmRSS $(status VmRSS) kB"

for p in 1 2 3 4; do
  "$TOOLS" lab flood --id "$ID" --pod "pod$p" --target 10.96.0.10:80 --count 64000 &
done
wait
"$TOOLS" --pin-root "/sys/fs/bpf/weir-lab-$ID" bpf conntrack stats | head -1

t0=$(cpu_ticks)
for ((s = 1; s <= SECONDS_TO_SAMPLE; s++)); do
  sleep 1
  if ((s % 10 == 0)); then
    t=$(cpu_ticks)
    echo "t+${s}s: agent CPU $(((t - t0) * 100 / HZ / 10))% of a core over the last 10 s, VmRSS $(status VmRSS) kB, VmHWM $(status VmHWM) kB"
    t0=$t
  fi
done
"$TOOLS" --pin-root "/sys/fs/bpf/weir-lab-$ID" bpf conntrack stats | head -1
grep -E 'WARNING|conntrack' "/run/weir-lab-$ID/agent.log" | tail -4
