// weir_propagation_bench: how long one Service change takes from `weir apply` returning to being
// in the NAT maps of every node of a cluster lab (issue 10, §6).
//
// For each cluster size: a lab of N nodes (`lab::Lab`, one pod each, the etcd datastore: one
// member on the underlay), S ClusterIP services (each with an EndpointSlice of 2 backends)
// applied through etcd before the agents start, the agents started and waited for until every
// node's NAT map has the last of them. Then C changes, one at a time: a new Service (VIP
// 10.100.x.y:80, one backend) written the way `weir apply` ends (ResourceStore::write: one etcd
// transaction), from the underlay namespace where the etcd is. From the moment the write is
// sent, every node's pinned weir_nat_fe1 map is polled (one lookup of the new frontend per node,
// every 200 us, from when etcd has answered) and the time each node has it is recorded. The
// latency of a change is when the LAST node had it ("in every node's maps"); the first node's is
// recorded too. (Timed from `weir apply`'s exit instead, it is 0: the agents have the change
// before the CLI process has finished exiting. The CLI's own time, which reads and validates the
// whole datastore before writing, is measured apart: 5 runs of `weir apply -f` of one service.)
// Changes are 300 ms apart, longer than the agents' minSyncPeriod (--min-sync-ms, default 100),
// so that no change waits for a rate limit a previous one started.
//
// Output: <out>/propagation.tsv (nodes, change, every-node ms, first-node ms),
// <out>/propagation.md (p50 / p99 / max per cluster size), <out>/propagation.png (gnuplot: the
// distribution per cluster size), and the same summary on stdout. Needs root (namespaces, BPF);
// everything the lab creates is removed on exit, failure or Ctrl-C (the lab's guardian).
//
//   weir_propagation_bench [--nodes "3 5 10"] [--services 10000] [--changes 100]
//                          [--min-sync-ms 100] [--out bench/results] [--weir PATH]
#include <arpa/inet.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bpf/map.h"
#include "datastore/store.h"
#include "lab/lab.h"
#include "lab/process.h"
#include "lab/resources.h"
#include "maps/pin_layout.h"
#include "maps/weir_maps.h"
#include "model/net.h"
#include "weir/nat.h"

#ifndef WEIR_BINARY
#error "WEIR_BINARY (path of the weir binary) must be defined by the build"
#endif

namespace weir::bench {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

struct Options {
  std::vector<int> nodes{3, 5, 10};
  int services = 10000;
  int changes = 100;
  int min_sync_ms = 100;
  std::string out = "bench/results";
  std::string weir = WEIR_BINARY;
};

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "weir_propagation_bench: %s\n", what.c_str());
  std::exit(1);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) die("missing value after " + a);
      return argv[++i];
    };
    if (a == "--nodes") {
      o.nodes.clear();
      std::istringstream in(next());
      for (int n; in >> n;) o.nodes.push_back(n);
    } else if (a == "--services") {
      o.services = std::atoi(next().c_str());
    } else if (a == "--changes") {
      o.changes = std::atoi(next().c_str());
    } else if (a == "--min-sync-ms") {
      o.min_sync_ms = std::atoi(next().c_str());
    } else if (a == "--out") {
      o.out = next();
    } else if (a == "--weir") {
      o.weir = next();
    } else {
      die("unknown argument " + a +
          " (usage: weir_propagation_bench [--nodes \"3 5 10\"] [--services N] [--changes C] "
          "[--min-sync-ms M] [--out DIR] [--weir PATH])");
    }
  }
  if (o.nodes.empty() || o.services < 1 || o.changes < 1 || o.min_sync_ms < 0)
    die("--nodes, --services and --changes must be positive");
  return o;
}

// 10.96.0.0/12 holds the bulk services (10.96.x.y), the changes go to 10.100.x.y.
std::string vip(int base_octet2, int i) {
  return fmt::format("10.{}.{}.{}", base_octet2, i / 250, i % 250 + 1);
}

weir_nat_fe_key fe_key(const std::string& ip) {
  weir_nat_fe_key k{};
  k.addr = weir::model::Ipv4::parse(ip)->network_order();
  k.port = htons(80);
  k.proto = 6;
  return k;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t idx = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(idx, v.size() - 1)];
}

struct Sample {
  double every_ms = 0, first_ms = 0;  // after the etcd write was answered
  double write_ms = 0;                // the etcd write itself
};

struct SizeResult {
  int nodes = 0;
  std::vector<Sample> samples;
  int lost = 0;  // changes some node never showed within 10 s
  double cli_apply_ms = 0;  // median run time of `weir apply -f` of one service
};

SizeResult run_size(const Options& o, int n) {
  SizeResult res;
  res.nodes = n;
  lab::LabSpec spec;
  spec.nodes = n;
  spec.pods = 1;
  spec.datastore = "etcd";
  spec.weir_binary = o.weir;
  spec.start_agent = false;
  spec.agent_log_level = "info";
  spec.min_sync_period = std::chrono::milliseconds(o.min_sync_ms);
  auto up = lab::Lab::up(spec);
  if (!up) die(up.error().str());
  lab::Lab& l = *up;
  std::fprintf(stderr, "%d nodes: lab %s up; applying %d services\n", n, l.id().c_str(), o.services);

  // The bulk: services with 2 backends each, on two of the nodes' pods.
  const auto& pods = l.pods();
  std::string bulk;
  for (int i = 0; i < o.services; ++i) {
    lab::ServiceDef svc;
    svc.name = fmt::format("bulk-{}", i);
    svc.cluster_ip = vip(96, i);
    svc.ports = {{"http", "TCP", 80, 8080}};
    std::vector<lab::BackendDef> be;
    for (int k = 0; k < 2; ++k) {
      const auto& p = pods[static_cast<size_t>(i + k) % pods.size()];
      be.push_back({p.ip, true, p.node, p.name});
    }
    bulk += lab::service_with_slice_yaml(svc, be) + "---\n";
  }
  auto t_bulk = Clock::now();
  if (auto s = l.write_resource("bulk.yaml", bulk); !s) die(s.error().str());
  std::fprintf(stderr, "  applied in %.1f s; starting %d agents\n",
               std::chrono::duration<double>(Clock::now() - t_bulk).count(), n);
  if (auto s = l.start_agent(); !s) die(s.error().str());

  std::vector<maps::NatFrontendMap> fe;
  for (const auto& node : l.nodes()) {
    auto m = maps::WeirMaps::open_pinned(maps::PinLayout{node.pin_root});
    if (!m) die(m.error().str());
    fe.push_back(std::move(m->nat_fe));
  }
  auto has = [&](size_t k, const weir_nat_fe_key& key) {
    auto v = fe[k].lookup(key);
    return v.ok() && v->has_value();
  };
  const auto last_bulk = fe_key(vip(96, o.services - 1));
  auto t_sync = Clock::now();
  for (;;) {
    bool all = true;
    for (size_t k = 0; k < fe.size(); ++k) all = all && has(k, last_bulk);
    if (all) break;
    if (Clock::now() - t_sync > 600s) die("the agents did not program the bulk services in 10 min");
    std::this_thread::sleep_for(50ms);
  }
  std::fprintf(stderr, "  every node has the %d services (%.1f s after the agents were ready)\n",
               o.services, std::chrono::duration<double>(Clock::now() - t_sync).count());

  // Let the agents settle: a change right after their start-up syncs would wait out the
  // minSyncPeriod those started (an artefact of the benchmark, not of the path it measures).
  std::this_thread::sleep_for(1s);
  const std::string ds = l.datastore_spec();
  for (int i = 0; i < o.changes; ++i) {
    lab::ServiceDef svc;
    svc.name = fmt::format("prop-{}", i);
    svc.cluster_ip = vip(100, i);
    svc.ports = {{"http", "TCP", 80, 8080}};
    const auto& p = pods[static_cast<size_t>(i) % pods.size()];
    std::string yaml = lab::service_with_slice_yaml(svc, {{p.ip, true, p.node, p.name}});
    // The write `weir apply` ends with (datastore::ResourceStore::write: one etcd transaction),
    // made from the underlay namespace where the etcd is; t_exec when it is sent, t0 when etcd
    // has answered.
    Clock::time_point t_exec, t0;
    auto w = l.in_netns(l.underlay_netns(), [&]() -> Status {
      auto store = datastore::open_store(ds);
      if (!store) return store.error();
      std::vector<std::pair<std::string, std::optional<std::string>>> changes;
      for (const auto& d : datastore::documents_of({"prop.yaml", yaml}))
        changes.emplace_back((*store)->new_source(d), (*store)->text_of(d));
      t_exec = Clock::now();
      auto st = (*store)->write(changes);
      t0 = Clock::now();
      return st;
    });
    if (!w) die(w.error().str());
    const auto key = fe_key(svc.cluster_ip);
    std::vector<double> seen(fe.size(), -1);
    size_t left = fe.size();
    while (left > 0 && Clock::now() - t0 < 10s) {
      for (size_t k = 0; k < fe.size(); ++k) {
        if (seen[k] >= 0 || !has(k, key)) continue;
        seen[k] = std::chrono::duration<double, std::milli>(Clock::now() - t_exec).count();
        --left;
      }
      if (left > 0) std::this_thread::sleep_for(200us);
    }
    if (left > 0) {
      res.lost++;
    } else {
      res.samples.push_back({*std::max_element(seen.begin(), seen.end()),
                             *std::min_element(seen.begin(), seen.end()),
                             std::chrono::duration<double, std::milli>(t0 - t_exec).count()});
    }
    std::this_thread::sleep_for(300ms);
  }
  // The CLI: `weir apply -f` of one service (validated against the whole datastore first).
  std::vector<double> cli;
  for (int i = 0; i < 5; ++i) {
    std::string file = fmt::format("{}/cli-{}.yaml", l.state_dir(), i);
    lab::ServiceDef svc;
    svc.name = fmt::format("cli-{}", i);
    svc.cluster_ip = vip(101, i);
    svc.ports = {{"http", "TCP", 80, 8080}};
    std::ofstream(file) << lab::service_with_slice_yaml(svc, {{pods[0].ip, true, pods[0].node, pods[0].name}});
    auto t = Clock::now();
    auto r = lab::run_checked({o.weir, "apply", "-f", file, "--datastore", ds},
                              lab::RunOptions::in(l.underlay_netns(), 60s));
    if (!r) die(r.error().str());
    cli.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t).count());
  }
  res.cli_apply_ms = percentile(cli, 50);
  // Node 1's "sync done in ... (datastore ..., calc ..., ...)" lines: where the time of each
  // change went.
  {
    std::ifstream in(l.agent_log_path(l.nodes()[0].name));
    std::ofstream out(fmt::format("{}/propagation-{}nodes-n1-syncs.log", o.out, n));
    for (std::string line; std::getline(in, line);)
      if (line.find("] sync done") != std::string::npos) out << line << "\n";
  }
  if (auto s = l.down(); !s) std::fprintf(stderr, "lab down: %s\n", s.error().str().c_str());
  return res;
}

}  // namespace
}  // namespace weir::bench

int main(int argc, char** argv) {
  using namespace weir::bench;
  if (::geteuid() != 0) die("needs root (network namespaces, BPF)");
  spdlog::set_level(spdlog::level::warn);
  Options o = parse(argc, argv);
  fs::create_directories(o.out);
  std::vector<SizeResult> results;
  for (int n : o.nodes) results.push_back(run_size(o, n));

  std::ofstream tsv(o.out + "/propagation.tsv");
  tsv << "nodes\tchange\tevery_node_ms\tfirst_node_ms\n";
  for (const auto& r : results)
    for (size_t i = 0; i < r.samples.size(); ++i)
      tsv << fmt::format("{}\t{}\t{:.2f}\t{:.2f}\n", r.nodes, i, r.samples[i].every_ms,
                         r.samples[i].first_ms);
  tsv.close();

  std::string md = fmt::format(
      "# Propagation: one Service written to etcd -> in every node's NAT map\n\n"
      "{} services in etcd, {} changes per cluster size, agents' minSyncPeriod {} ms "
      "(bench/propagation_bench.cpp; reproduce: `sudo build/weir_propagation_bench --nodes \"{}\" "
      "--services {} --changes {}`).\n\n"
      "Latency: from the etcd write of one new Service being sent to its frontend being in the "
      "NAT map of every node (first node: the quickest one). `weir apply` CLI: the median run "
      "time of the whole command for one service (it reads and validates the datastore first).\n\n"
      "| nodes | p50 every node | p99 every node | max | p50 first node | p50 etcd write | lost | `weir apply` CLI |\n"
      "|---|---|---|---|---|---|---|---|\n",
      o.services, o.changes, o.min_sync_ms, fmt::join(o.nodes, " "), o.services, o.changes);
  for (const auto& r : results) {
    std::vector<double> every, first, write;
    for (const auto& s : r.samples) {
      every.push_back(s.every_ms);
      first.push_back(s.first_ms);
      write.push_back(s.write_ms);
    }
    md += fmt::format("| {} | {:.1f} ms | {:.1f} ms | {:.1f} ms | {:.1f} ms | {:.1f} ms | {} | {:.0f} ms |\n",
                      r.nodes, percentile(every, 50), percentile(every, 99), percentile(every, 100),
                      percentile(first, 50), percentile(write, 50), r.lost, r.cli_apply_ms);
  }
  std::ofstream(o.out + "/propagation.md") << md;
  std::fputs(md.c_str(), stdout);

  // The distribution per cluster size (gnuplot, when installed).
  std::string gp = o.out + "/propagation.gp";
  {
    std::ofstream g(gp);
    g << "set terminal pngcairo size 900,560\nset output '" << o.out << "/propagation.png'\n"
      << "set title 'one Service written to etcd -> in every node''s NAT map (" << o.services
      << " services)'\nset xlabel 'etcd write sent -> in every node (ms)'\nset ylabel 'fraction of changes'\n"
      << "set key bottom right\nset grid\nset datafile separator tab\n"
      << "plot ";
    for (size_t i = 0; i < results.size(); ++i)
      g << (i ? ", " : "") << "'" << o.out << "/propagation.tsv' using (($1==" << results[i].nodes
        << ")?$3:1/0):(1.0/" << std::max<size_t>(results[i].samples.size(), 1)
        << ") smooth cumulative with lines lw 2 title '" << results[i].nodes << " nodes'";
    g << "\n";
  }
  if (std::system(fmt::format("command -v gnuplot >/dev/null && gnuplot '{}'", gp).c_str()) == 0)
    std::printf("\nplot: %s/propagation.png\n", o.out.c_str());
  else
    std::printf("\n(gnuplot not installed: no plot; the script is %s)\n", gp.c_str());
  return 0;
}
