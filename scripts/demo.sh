#!/usr/bin/env bash
# The README's demo: a one-node lab with the agent, a ClusterIP service with three backends,
# TCP and UDP clients through the VIP, the kernel state as `weir bpf` shows it, then a
# NetworkPolicy and its effect (policy dump, IP sets, counters).
# Builds nothing: usage  scripts/demo.sh [path/to/weir]   (default ./build/weir), as root.
# Everything it creates is named weir-<id>-* and removed on exit, on failure and on Ctrl-C.
set -euo pipefail

WEIR=${1:-./build/weir}
if [[ $EUID -ne 0 ]]; then echo "demo.sh: run as root (network namespaces and BPF)" >&2; exit 1; fi
if [[ ! -x $WEIR ]]; then
  echo "demo.sh: $WEIR is not an executable weir binary (build first: scripts/build.sh)" >&2
  exit 1
fi
WEIR=$(readlink -f "$WEIR")

ID=$(printf 'd%05x' $(($$ & 0xfffff)))   # run id: names weir-$ID-node, weir-$ID-pod1, ...
NODE=weir-$ID-node
PIN=/sys/fs/bpf/weir-lab-$ID
VIP=10.96.0.10
WORK=$(mktemp -d "/tmp/weir-demo-$ID.XXXXXX")

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  "$WEIR" lab down --id "$ID" >/dev/null 2>&1 || "$WEIR" lab down --id "$ID" || true
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -t 1 ]]; then B=$'\e[1m' N=$'\e[0m'; else B='' N=''; fi
step() { printf '\n%s== %s%s\n' "$B" "$*" "$N"; }
run() { printf '%s$ %s%s\n' "$B" "$*" "$N"; "$@"; }
# `weir bpf ...` as an operator runs it on the node: inside the node's network namespace (nsenter
# keeps the mount namespace, so the pins stay visible), with the lab's pin root.
node_weir() { run nsenter --net="/run/netns/$NODE" "$WEIR" --pin-root "$PIN" "$@"; }

step "1. a one-node lab: node netns, 4 pod netns joined by veths, the agent in the node netns"
run "$WEIR" lab up --pods 4 --id "$ID"

step "2. servers in pod2..pod4: each answers every TCP line / UDP datagram with its name"
for p in pod2 pod3 pod4; do
  run "$WEIR" lab server --id "$ID" --pod "$p" --tcp 8080 --udp 5353
done

step "3. Service web ($VIP: TCP 80 -> 8080 \"http\", UDP 53 -> 5353) and its EndpointSlice"
# The pods' IPs, from the lab's record. (read < <(...) rather than $(...): bash 5.2 mangles an
# INT/TERM trap that fires during a command substitution.)
pod_ip() { "$WEIR" lab status --id "$ID" | awk -v p="$1" '$1 == p { print $2; exit }'; }
read -r IP2 < <(pod_ip pod2)
read -r IP3 < <(pod_ip pod3)
read -r IP4 < <(pod_ip pod4)
cat >"$WORK/web.yaml" <<EOF
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: ClusterIP
  clusterIP: $VIP
  ports:
  - {name: http, protocol: TCP, port: 80, targetPort: 8080}
  - {name: dns, protocol: UDP, port: 53, targetPort: 5353}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-demo
  namespace: default
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports:
- {name: http, protocol: TCP, port: 8080}
- {name: dns, protocol: UDP, port: 5353}
endpoints:
- {addresses: ["$IP2"], conditions: {ready: true}, nodeName: $NODE}
- {addresses: ["$IP3"], conditions: {ready: true}, nodeName: $NODE}
- {addresses: ["$IP4"], conditions: {ready: true}, nodeName: $NODE}
EOF
cat "$WORK/web.yaml"
run "$WEIR" lab apply --id "$ID" "$WORK/web.yaml"
sleep 0.5   # one sync period (the lab's DataplaneConfig sets minSyncPeriod: 200ms) and a margin

step "4. clients in pod1 through the VIP: which backends answered, and from which address"
run "$WEIR" lab client --id "$ID" --pod pod1 --target "$VIP:80" --proto tcp --count 15
run "$WEIR" lab client --id "$ID" --pod pod1 --target "$VIP:53" --proto udp --count 15

step "5. the kernel state behind it"
node_weir bpf nat dump
node_weir bpf conntrack dump
node_weir bpf counters dump --iface="weir${ID}p1"

step "6. a NetworkPolicy: the web pods accept TCP 8080 from pod1 only (UDP is now denied)"
cat >"$WORK/np.yaml" <<EOF
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-pod1, namespace: default}
spec:
  podSelector: {matchExpressions: [{key: app, operator: In, values: [pod2, pod3, pod4]}]}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: pod1}}}]
    ports: [{protocol: TCP, port: 8080}]
EOF
cat "$WORK/np.yaml"
run "$WEIR" lab apply --id "$ID" "$WORK/np.yaml"
sleep 0.5
run "$WEIR" lab client --id "$ID" --pod pod1 --target "$VIP:80" --proto tcp --count 6
run "$WEIR" lab client --id "$ID" --pod pod1 --target "$VIP:53" --proto udp --count 3 || true
node_weir bpf policy dump "weir${ID}p2" ingress
node_weir bpf ipsets dump
node_weir bpf counters dump --iface="weir${ID}p2"

step "7. teardown"
run "$WEIR" lab down --id "$ID"
