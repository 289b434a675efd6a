#!/usr/bin/env python3
"""Turns the TSV written by bench/scaling.sh into bench/results/scaling-<mode>.md and PNG plots
(gnuplot). Every ratio compares figures of the same run (the same TSV)."""
import argparse
import collections
import os
import subprocess
import sys

DPS = ["weir", "iptables", "nftables"]


def main():
    ap = argparse.ArgumentParser()
    for k in ["tsv", "out", "mode", "seconds", "runs", "duration", "load", "kernel", "cpus", "rt",
              "iptables", "nft"]:
        ap.add_argument("--" + k, required=True)
    a = ap.parse_args()

    v = collections.defaultdict(dict)  # (n, dp) -> metric -> value
    sizes = set()
    with open(a.tsv) as f:
        next(f)
        for line in f:
            n, dp, k, val = line.rstrip("\n").split("\t")
            v[(int(n), dp)][k] = float(val)
            sizes.add(int(n))
    sizes = sorted(sizes)

    def g(n, dp, k):
        return v.get((n, dp), {}).get(k)

    def fmt(x, digits=0):
        if x is None:
            return "-"
        return f"{x:,.{digits}f}"

    def fmt_ratio(x):
        if x is None:
            return "-"
        return f"{x:.4f}" if x < 0.01 else (f"{x:.3f}" if x < 0.1 else f"{x:,.2f}")

    def ratio(x, y):
        return None if x is None or y is None or y == 0 else x / y

    md = []
    w = md.append
    w(f"# Service scaling: weir vs kube-proxy iptables and nftables modes ({a.mode} mode)\n")
    w(f"Produced by `bench/scaling.sh --{a.mode}` in {a.seconds} s on a {a.cpus}-CPU VM, kernel "
      f"{a.kernel}, {a.iptables}, {a.nft}. Load average (1/5/15 min) {a.load}: the machine is "
      "shared with other jobs that compile, so absolute figures are noisy; every ratio below is "
      "taken within this one run.\n")
    if a.rt == "1":
        w("The load generator and the servers ran at SCHED_FIFO priority 10 (`--rt`), so that "
          "the other jobs on the machine did not preempt them.\n")
    w(f"Each latency / rate figure is the median of {a.runs} runs of {a.duration} s (after a "
      f"0.5 s warm-up); each sync figure the median of {a.runs} changes (at 10,000 services and "
      f"more: of {min(3, int(a.runs))} changes, and for iptables of {min(3, int(a.runs))} partial "
      f"syncs and one full re-restore, which costs about what the apply costs); the apply time "
      f"is the median of {a.runs} applies from scratch up to 1,000 services and one apply "
      f"above (seconds to minutes each).\n")
    multi_tx = [n for n in sizes if (g(n, "nftables", "apply_transactions") or 1) > 1]
    w("## Figures\n")
    w("| services | dataplane | p50 µs | p90 µs | p99 µs | new conn/s | req/s established | "
      "apply ms | sync ms (one service) | memory |")
    w("|---:|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for n in sizes:
        for dp in DPS:
            if (n, dp) not in v:
                continue
            if g(n, dp, "skipped"):
                w(f"| {n:,} | {dp} | not run (capped, see the notes) | | | | | | | |")
                continue
            if dp == "iptables":
                sync = f"{fmt(g(n, dp, 'sync_ms'), 1)} full / {fmt(g(n, dp, 'sync_partial_ms'), 1)} partial"
                mem = f"iptables-save {fmt(g(n, dp, 'ruleset_bytes'))} B, {fmt(g(n, dp, 'rules'))} rules"
            elif dp == "nftables":
                sync = fmt(g(n, dp, "sync_ms"), 1)
                mem = f"nft list ruleset {fmt(g(n, dp, 'ruleset_bytes'))} B"
            else:
                sync = fmt(g(n, dp, "sync_ms"), 1)
                mem = (f"agent RSS {fmt(g(n, dp, 'agent_rss_kb'))} KiB, NAT maps "
                       f"{fmt((g(n, dp, 'nat_map_bytes') or 0) / 1024)} KiB, service-path maps "
                       f"{fmt((g(n, dp, 'all_maps_bytes') or 0) / 1048576, 1)} MiB")
            errs = (g(n, dp, "errors") or 0) + (g(n, dp, "rr_errors") or 0)
            err = f" ({fmt(errs)} errors)" if errs else ""
            w(f"| {n:,} | {dp}{err} | {fmt(g(n, dp, 'p50_us'), 1)} | {fmt(g(n, dp, 'p90_us'), 1)} | "
              f"{fmt(g(n, dp, 'p99_us'), 1)} | {fmt(g(n, dp, 'cps'))} | {fmt(g(n, dp, 'rps'))} | "
              f"{fmt(g(n, dp, 'apply_ms'), 1)} | {sync} | {mem} |")
    w("")
    w("- new conn/s: one client thread, connect + `ping\\n` + answer line + close, to a service "
      "chosen at random, one connection at a time (so new conn/s is 1 / mean latency); "
      "req/s established: one request at a time round-robin over 16 open connections.")
    w(f"- apply: iptables = `iptables-restore --noflush` of the whole set (the input kube-proxy "
      f"writes on a full sync; binary: {a.iptables}; above 1,000 endpoints in all, kube-proxy's "
      f"large-cluster mode leaves the comments off the endpoint rules, kubernetes/kubernetes#65755); "
      f"nftables = `nft -f` of the whole set as kube-proxy's add commands, in one transaction"
      + ("" if not multi_tx else
         " up to 10,000 services and above that in transactions of 2,500 services ("
         + ", ".join(f"{int(g(n, 'nftables', 'apply_transactions')):,} at {n:,}" for n in multi_tx)
         + "): one transaction of 50,000 services would take about an hour here, because the "
         "kernel's cost per transaction grows with the square of its size (perf: "
         "`__nft_set_trans_bind` walks the whole transaction for each service's anonymous vmap, "
         "and `nf_tables_newset` scans every set of the table to name a new anonymous one); "
         "the one transaction of 10,000 services holds a CPU in the kernel long enough for "
         "soft-lockup warnings")
      + "; weir = from renaming the YAML files into the agent's datastore until the "
      "pinned NAT maps hold every frontend and backend. Rule generation time is not counted "
      "for iptables/nftables (kube-proxy's own computation is left out, which favours them); "
      "weir's time includes the agent reading and parsing every file.")
    w("- sync: one service's endpoints change. iptables `full` = a full re-restore (every "
      "chain, what kube-proxy does on a full sync and did on every sync before 1.27); "
      "`partial` = KEP-3453's partial sync (kube-proxy's default since 1.27: KUBE-SERVICES and "
      "the other top-level chains rewritten in full, plus the changed service's chains); "
      "nftables = kube-proxy's one-service transaction (flush + rewrite the service chain, "
      "add/delete endpoint chains); weir = from renaming the changed file into the datastore "
      "until the NAT maps show the new backends (the agent re-reads the changed file only and, "
      "when only Services and EndpointSlices changed, recomputes those services only).")
    skipped = sorted({(n, dp) for (n, dp), m in v.items() if m.get("skipped")})
    if skipped:
        w("- not run: " + ", ".join(f"{dp} at {n:,}" for n, dp in skipped) + " (capped with "
          "`bench/scaling.sh --iptables-max` / `--nftables-max`).")
    w("- memory: weir's maps are preallocated hash maps, here sized for 64Ki frontends / 512Ki "
      "backends (DataplaneConfig `mapSizes`; the default 256Ki backends is too small for "
      "50,000 services of 2-10 backends), so their memory does not grow with the services; the "
      "iptables/nftables figure is the size of the rule-set text, not kernel memory.")
    w("")

    # ---------------------------------------------------------------- ratios
    w("## Ratios within this run\n")
    w("| services | weir p50 / iptables p50 | weir p50 / nftables p50 | weir conn/s / iptables | "
      "weir conn/s / nftables | weir sync / iptables partial sync | weir sync / nftables sync | "
      "weir apply / iptables apply |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        r = [ratio(g(n, "weir", "p50_us"), g(n, "iptables", "p50_us")),
             ratio(g(n, "weir", "p50_us"), g(n, "nftables", "p50_us")),
             ratio(g(n, "weir", "cps"), g(n, "iptables", "cps")),
             ratio(g(n, "weir", "cps"), g(n, "nftables", "cps")),
             ratio(g(n, "weir", "sync_ms"), g(n, "iptables", "sync_partial_ms")),
             ratio(g(n, "weir", "sync_ms"), g(n, "nftables", "sync_ms")),
             ratio(g(n, "weir", "apply_ms"), g(n, "iptables", "apply_ms"))]
        w(f"| {n:,} | " + " | ".join(fmt_ratio(x) for x in r) + " |")
    w("")
    first = sizes[0]
    w(f"Growth from {first:,} service(s) to each size, same dataplane (p50 latency ratio, "
      "conn/s ratio):\n")
    w("| services | weir p50 | iptables p50 | nftables p50 | weir conn/s | iptables conn/s | nftables conn/s |")
    w("|---:|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        row = [ratio(g(n, dp, "p50_us"), g(first, dp, "p50_us")) for dp in DPS]
        row += [ratio(g(n, dp, "cps"), g(first, dp, "cps")) for dp in DPS]
        w(f"| {n:,} | " + " | ".join(fmt(x, 2) for x in row) + " |")
    w("")

    # ---------------------------------------------------------------- wins and losses
    w("## Where weir wins and where it loses\n")
    w("weir against the better of iptables and nftables mode, per size and figure "
      "(ratio = weir / best; for latencies and times lower is better, for rates higher):\n")
    metrics = [("p50_us", "p50 latency", False), ("p99_us", "p99 latency", False),
               ("cps", "new conn/s", True), ("rps", "req/s established", True),
               ("apply_ms", "apply time", False), ("sync_ms", "one-service sync", False)]
    for n in sizes:
        wins, losses = [], []
        for k, label, higher in metrics:
            others = []
            for dp in ["iptables", "nftables"]:
                key = "sync_partial_ms" if (k == "sync_ms" and dp == "iptables") else k
                if g(n, dp, key) is not None:
                    others.append((g(n, dp, key), dp))
            mine = g(n, "weir", k)
            if mine is None or not others:
                continue
            best = max(others) if higher else min(others)
            r = ratio(mine, best[0])
            better = mine >= best[0] if higher else mine <= best[0]
            (wins if better else losses).append(f"{label} {fmt_ratio(r)}x {best[1]}")
        if not wins and not losses:
            w(f"- {n:,} services: no other dataplane measured at this size.")
            continue
        w(f"- {n:,} service{'' if n == 1 else 's'}: wins: {', '.join(wins) or 'none'}; **loses: "
          f"{', '.join(losses) or 'none'}**.")
    w("")

    # ---------------------------------------------------------------- goals
    w("## Goals (stated, not enforced)\n")

    def verdict(ok):
        return "not measured" if ok is None else ("PASS" if ok else "MISS")

    def at(target):
        return target if target in sizes else None

    big = at(10000)
    if big is None:
        avail = [s for s in sizes if s <= 10000]
        shown = avail[-1] if avail else None
        note = (f" **Not measured at 10,000 services in this run** ({a.mode} mode); shown at "
                f"{shown:,} services instead, as an indication only." if shown else "")
    else:
        shown, note = big, ""
    if shown is not None:
        r1 = ratio(g(shown, "weir", "p50_us"), g(shown, "iptables", "p50_us"))
        r2 = ratio(g(shown, "weir", "p50_us"), g(first, "weir", "p50_us"))
        ok1 = None if big is None or r1 is None else r1 <= 0.5
        ok2 = None if big is None or r2 is None else r2 <= 1.1
        w(f"1. At 10,000 services weir's p50 new-connection latency is at most half of iptables "
          f"mode's: weir {fmt(g(shown, 'weir', 'p50_us'), 1)} µs vs iptables "
          f"{fmt(g(shown, 'iptables', 'p50_us'), 1)} µs at {shown:,} services = "
          f"{fmt(r1, 3)}x: **{verdict(ok1)}**.{note}"
          + ("" if g(shown, "iptables", "p50_us") is not None else
             f" iptables mode was not run at {shown:,} services (see the notes); against "
             f"nftables mode there: weir / nftables p50 = "
             f"{fmt(ratio(g(shown, 'weir', 'p50_us'), g(shown, 'nftables', 'p50_us')), 2)}x, and "
             f"against iptables mode at the largest size it ran "
             f"({max([n for n in sizes if g(n, 'iptables', 'p50_us') is not None] or [0]):,}): "
             f"{fmt(ratio(g(max([n for n in sizes if g(n, 'iptables', 'p50_us') is not None] or [0]), 'weir', 'p50_us'), g(max([n for n in sizes if g(n, 'iptables', 'p50_us') is not None] or [0]), 'iptables', 'p50_us')), 2)}x."))
        w(f"2. ... and within 1.1x of weir's own at {first:,} service(s): "
          f"{fmt(g(shown, 'weir', 'p50_us'), 1)} / {fmt(g(first, 'weir', 'p50_us'), 1)} µs = "
          f"{fmt(r2, 3)}x: **{verdict(ok2)}**.{note}")
        s = g(shown, "weir", "sync_ms")
        ok3 = None if big is None or s is None else s <= 10
        w(f"3. One service change at 10,000 services is in effect within 10 ms: weir "
          f"{fmt(s, 1)} ms (median) at {shown:,} services: **{verdict(ok3)}**.{note}")
    b50 = at(50000)
    if b50 is None:
        w(f"4. weir's connections per second at 50,000 services within 10% of its rate at 1 "
          f"service: **not measured** in this run ({a.mode} mode; largest size "
          f"{sizes[-1]:,}: {fmt(ratio(g(sizes[-1], 'weir', 'cps'), g(first, 'weir', 'cps')), 2)}x "
          f"the rate at {first:,}).")
    else:
        r4 = ratio(g(b50, "weir", "cps"), g(first, "weir", "cps"))
        w(f"4. weir's connections per second at 50,000 services within 10% of its rate at "
          f"{first:,}: {fmt(g(b50, 'weir', 'cps'))} vs {fmt(g(first, 'weir', 'cps'))} = "
          f"{fmt(r4, 3)}x: **{verdict(None if r4 is None else r4 >= 0.9)}**.")
    w("")

    # ---------------------------------------------------------------- plots
    prefix = os.path.join(a.out, f"scaling-{a.mode}")
    dat = prefix + ".dat"
    cols = ["p50_us", "p99_us", "cps", "rps", "apply_ms", "sync_ms", "sync_partial_ms"]
    with open(dat, "w") as f:
        for i, dp in enumerate(DPS):
            f.write(f"# {dp}: services " + " ".join(cols) + "\n")
            for n in sizes:
                f.write(f"{n} " + " ".join(
                    str(g(n, dp, c)) if g(n, dp, c) is not None else "NaN" for c in cols) + "\n")
            f.write("\n\n")
    plots = [("latency", "p50 new-connection latency (µs)", 2, False),
             ("cps", "new connections per second", 4, False),
             ("rr", "requests per second, established connections", 5, False),
             ("apply", "time to apply the whole service set (ms)", 6, True),
             ("sync", "time until one changed service is in effect (ms)", 7, True)]
    pngs = []
    for name, title, col, logy in plots:
        png = f"{prefix}-{name}.png"
        script = [
            "set terminal pngcairo size 800,500 font ',10'",
            f"set output '{png}'",
            f"set title '{title} ({a.mode} mode)'",
            "set logscale x", "set xlabel 'ClusterIP services'", "set grid", "set key top left",
            "set datafile missing 'NaN'",
        ]
        if logy:
            script.append("set logscale y")
        else:
            script.append("set yrange [0:*]")
        lines = [f"'{dat}' index {i} using 1:{col} with linespoints lw 2 title '{dp}"
                 + (" (full re-restore)" if name == "sync" and dp == "iptables" else "") + "'"
                 for i, dp in enumerate(DPS)]
        if name == "sync":
            lines.append(f"'{dat}' index 1 using 1:8 with linespoints lw 2 dt 2 title 'iptables (partial sync)'")
        script.append("plot " + ", ".join(lines))
        subprocess.run(["gnuplot"], input="\n".join(script), text=True, check=True)
        pngs.append(os.path.basename(png))
    w("## Plots\n")
    for p in pngs:
        w(f"![{p}]({p})")
    w("")
    with open(prefix + ".md", "w") as f:
        f.write("\n".join(md))
    print(prefix + ".md")


if __name__ == "__main__":
    sys.exit(main())
