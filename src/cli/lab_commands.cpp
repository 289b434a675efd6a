// `weir lab ...`: build, inspect and tear down lab topologies (see docs/lab.md).
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "bpf/caps.h"
#include "cli/commands.h"
#include "lab/flood.h"
#include "lab/lab.h"
#include "lab/traffic.h"

namespace weir::cli {

namespace {

namespace fs = std::filesystem;
using lab::Lab;

// Which lab a command is about: --state-dir, else --id, else the only one recorded.
struct Target {
  std::string id;
  std::string state_dir;

  void add_to(CLI::App* sub) {
    sub->add_option("--id", id, "lab run id (default: the only lab recorded on this machine)");
    sub->add_option("--state-dir", state_dir, "lab state directory (default /run/weir-lab-<id>)");
  }

  Result<std::string> resolve_dir() const {
    if (!state_dir.empty()) return state_dir;
    if (!id.empty()) return Lab::default_state_dir(id);
    auto dirs = Lab::list_state_dirs();
    if (dirs.empty()) return Error{ENOENT, "no lab is recorded (/run/weir-lab-*); give --id"};
    if (dirs.size() > 1)
      return make_error("several labs are recorded ({}); give --id", fmt::join(dirs, ", "));
    return dirs.front();
  }

  Result<Lab> load() const {
    auto dir = resolve_dir();
    if (!dir) return dir.error();
    return Lab::load(*dir);
  }
};

int fail(const Error& e) {
  fmt::print(stderr, "weir lab: {}\n", e.str());
  return 1;
}

// What an agent's log says of its health: the time of its last "sync done" and its last
// error, if any ("" when none).
struct AgentHealth {
  std::string last_sync, last_error;
  int errors = 0;
};
AgentHealth agent_health(const std::string& log) {
  AgentHealth h;
  std::istringstream in(log);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("---- weir lab", 0) == 0) h = AgentHealth{};  // a new run of the agent
    if (line.find("] sync done") != std::string::npos) h.last_sync = line.substr(0, 19);
    if (line.find(" [ERROR]") != std::string::npos || line.find(" [CRITICAL]") != std::string::npos) {
      ++h.errors;
      h.last_error = line;
    }
  }
  return h;
}

std::string agent_line(const Lab& l, const std::string& node) {
  std::string log = l.agent_log_path(node);
  if (l.agent_pid(node) == 0) return fmt::format("not running (log {})", log);
  if (!l.agent_running(node)) return fmt::format("pid {} NOT running (log {})", l.agent_pid(node), log);
  auto h = agent_health(l.agent_log(node));
  std::string s = fmt::format("pid {} running, last sync {}, {} error{} logged", l.agent_pid(node),
                              h.last_sync.empty() ? "none yet" : h.last_sync, h.errors,
                              h.errors == 1 ? "" : "s");
  if (!h.last_error.empty()) s += fmt::format(" (last: {})", h.last_error);
  return s + fmt::format(", log {}", log);
}

void print_pods(const std::vector<lab::Pod>& pods, const std::string& indent) {
  fmt::print("{}{:<8} {:<15} {:<18} {:<24} {:<16} {}\n", indent, "NAME", "IP", "MAC", "NETNS",
             "HOST IF", "NETNS PRESENT");
  for (const auto& p : pods)
    fmt::print("{}{:<8} {:<15} {:<18} {:<24} {:<16} {}\n", indent, p.name, p.ip, p.mac, p.netns,
               p.host_if, lab::netns_exists(p.netns) ? "yes" : "NO");
}

void print_lab(const Lab& l) {
  fmt::print("lab {}\n", l.id());
  std::string ds = fmt::format("{}{}", l.datastore_spec(),
                               l.state().datastore == "etcd" ? " (files applied: " + l.datastore_dir() + ")" : "");
  if (!l.cluster()) {
    fmt::print("  node       {} (network namespace; node name {})\n", l.node_netns(), l.node_name());
    fmt::print("  agent      {}\n", agent_line(l, ""));
    fmt::print("  pin root   {}{}\n", l.pin_root(), fs::exists(l.pin_root()) ? "" : " (absent)");
    fmt::print("  datastore  {}\n", ds);
    fmt::print("  pods:\n");
    print_pods(l.pods(), "    ");
    return;
  }
  const auto& st = l.state();
  fmt::print("  underlay   {} (bridge weirbr in network namespace {}{})\n", st.underlay_cidr,
             l.underlay_netns(), lab::netns_exists(l.underlay_netns()) ? "" : ", ABSENT");
  fmt::print("  encap      {}\n", st.encap == "vxlan" ? "vxlan" : "none (routed)");
  fmt::print("  pod CIDR   {}\n", st.pod_cidr);
  fmt::print("  datastore  {}\n", ds);
  for (const auto& n : l.nodes()) {
    fmt::print("  node {} (network namespace{})\n", n.name,
               lab::netns_exists(n.name) ? "" : ", ABSENT");
    fmt::print("    underlay   {} on eth0\n", n.underlay_ip);
    fmt::print("    pod CIDR   {}\n", n.pod_cidr);
    fmt::print("    agent      {}\n", agent_line(l, n.name));
    fmt::print("    pin root   {}{}\n", n.pin_root, fs::exists(n.pin_root) ? "" : " (absent)");
    fmt::print("    pods:\n");
    print_pods(l.pods_of(n.name), "      ");
  }
}

// The Services and EndpointSlices in the lab's datastore, one line each.
void print_services(const Lab& l) {
  fmt::print("  services in the datastore:\n");
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(l.datastore_dir(), ec))
    if (e.path().filename().string()[0] != '.') files.push_back(e.path());
  std::sort(files.begin(), files.end());
  int n = 0;
  for (const auto& f : files) {
    std::vector<YAML::Node> docs;
    try {
      docs = YAML::LoadAllFromFile(f.string());
    } catch (const std::exception& e) {
      fmt::print("    {}: unreadable YAML: {}\n", f.filename().string(), e.what());
      continue;
    }
    for (const auto& d : docs) {
      if (!d.IsMap() || !d["kind"]) continue;
      auto kind = d["kind"].as<std::string>("");
      auto name =
          d["metadata"] && d["metadata"]["name"] ? d["metadata"]["name"].as<std::string>("") : "";
      if (kind == "Service") {
        std::vector<std::string> ports;
        if (d["spec"] && d["spec"]["ports"])
          for (const auto& p : d["spec"]["ports"])
            ports.push_back(fmt::format("{} {}->{}", p["protocol"].as<std::string>("TCP"),
                                        p["port"].as<std::string>("?"),
                                        p["targetPort"].as<std::string>("=")));
        fmt::print(
            "    Service {:<16} {:<15} {}  ({})\n", name,
            d["spec"] && d["spec"]["clusterIP"] ? d["spec"]["clusterIP"].as<std::string>("") : "",
            fmt::join(ports, ", "), f.filename().string());
        ++n;
      } else if (kind == "EndpointSlice") {
        std::vector<std::string> eps;
        if (d["endpoints"])
          for (const auto& e : d["endpoints"]) {
            bool ready = !(e["conditions"] && e["conditions"]["ready"]) ||
                         e["conditions"]["ready"].as<bool>(true);
            if (e["addresses"])
              for (const auto& a : e["addresses"])
                eps.push_back(a.as<std::string>("?") + (ready ? "" : " (not ready)"));
          }
        fmt::print("      EndpointSlice {}: {}\n", name,
                   eps.empty() ? "no endpoints" : fmt::format("{}", fmt::join(eps, ", ")));
      }
    }
  }
  if (n == 0) fmt::print("    (none)\n");
}

// Prints what a finished process wrote; returns its exit code (128 + signal when killed).
int relay(const lab::RunResult& r) {
  fmt::print("{}", r.out);
  std::fflush(stdout);
  fmt::print(stderr, "{}", r.err);
  return r.status.exited ? r.status.code : 128 + r.status.signal;
}

// `client --hold`: rounds until SIGINT/SIGTERM (blocked here, polled between rounds), each
// round's report printed as it ends.
void hold_until_signal(lab::ClientOptions& co) {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  ::pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  co.keep_holding = [stop] {
    timespec zero{};
    return ::sigtimedwait(&stop, nullptr, &zero) < 0;
  };
  co.on_round = [](int round, const lab::ClientReport& r) {
    fmt::print("round {}: {}", round, r.str());
    std::fflush(stdout);
  };
}

// `weir lab up`
void add_up(CLI::App* parent, GlobalOptions& g, int& rc) {
  struct Opts {
    int pods = 3, nodes = 0, pods_per_node = 0, underlay_mtu = 1500, etcd_members = 1;
    std::string id, pod_cidr, underlay_cidr = "192.168.200.0/24", encap = "none";
    bool no_agent = false;
    std::string tc_mode = "auto";
    std::string datastore = "dir";
  };
  auto o = std::make_shared<Opts>();
  auto* sub = parent->add_subcommand(
      "up", "create a lab: one node (node netns + pod netns + veths) or, with --nodes, a cluster of "
            "nodes joined by an underlay bridge, an agent on each");
  sub->add_option("--pods", o->pods, "number of pods (1..99; per node with --nodes)")
      ->capture_default_str();
  sub->add_option("--nodes", o->nodes, "a cluster of this many nodes (1..20), each with its agent");
  sub->add_option("--pods-per-node", o->pods_per_node, "pods on each node of a cluster (1..61)");
  sub->add_option("--id", o->id, "run id: 1..8 of [a-z0-9] (default: from the pid)");
  sub->add_option("--pod-cidr", o->pod_cidr,
                  "pod addresses (default 10.65.0.0/24; a cluster 10.65.0.0/16, a /26 per node)");
  sub->add_option("--underlay-cidr", o->underlay_cidr, "a cluster's underlay addresses")
      ->capture_default_str();
  sub->add_option("--encap", o->encap, "between a cluster's nodes: none (routed) or vxlan")
      ->check(CLI::IsMember({"none", "vxlan"}))
      ->capture_default_str();
  sub->add_option("--underlay-mtu", o->underlay_mtu, "a cluster's underlay MTU")->capture_default_str();
  sub->add_flag("--no-agent", o->no_agent, "do not start the agents");
  sub->add_option("--tc-mode", o->tc_mode, "the agents' TC attach mode: auto, tcx or clsact")
      ->check(CLI::IsMember({"auto", "tcx", "clsact"}))
      ->capture_default_str();
  sub->add_option("--datastore", o->datastore,
                  "dir (a directory) or etcd (an etcd member the lab runs: in the node netns, or "
                  "a cluster's underlay netns)")
      ->check(CLI::IsMember({"dir", "etcd"}))
      ->capture_default_str();
  sub->add_option("--etcd-members", o->etcd_members, "with --datastore etcd: 1 or 3 members")
      ->check(CLI::IsMember({1, 3}))
      ->capture_default_str();
  sub->callback([o, &g, &rc] {
    if (o->nodes == 0 && (o->pods_per_node != 0 || o->encap != "none" || o->underlay_mtu != 1500)) {
      rc = fail(make_error("--pods-per-node, --encap and --underlay-mtu describe a cluster: give --nodes"));
      return;
    }
    lab::LabSpec spec;
    spec.datastore = o->datastore;
    spec.etcd_members = o->etcd_members;
    spec.nodes = o->nodes;
    spec.pods = o->pods_per_node != 0 ? o->pods_per_node : o->pods;
    spec.run_id = o->id;
    spec.pod_cidr = o->pod_cidr;
    spec.underlay_cidr = o->underlay_cidr;
    spec.encap = o->encap;
    spec.underlay_mtu = o->underlay_mtu;
    spec.start_agent = !o->no_agent;
    spec.agent_log_level = g.log_level;
    spec.agent_tc_mode = o->tc_mode;
    auto l = Lab::up(spec);
    if (!l) {
      rc = fail(l.error());
      return;
    }
    l->release();  // the lab outlives this command
    print_lab(*l);
    fmt::print("\ntear down with: weir lab down --id {}\n", l->id());
    rc = 0;
  });
}

// `weir lab down`
void add_down(CLI::App* parent, int& rc) {
  auto t = std::make_shared<Target>();
  auto* sub = parent->add_subcommand("down", "tear a lab down (works from its record)");
  t->add_to(sub);
  sub->callback([t, &rc] {
    auto dir = t->resolve_dir();
    if (!dir) {
      rc = fail(dir.error());
      return;
    }
    auto l = Lab::load(*dir);
    if (!l) {
      // No record: nothing of ours is known to exist, but report leftovers by name.
      std::vector<std::string> left;
      if (!t->id.empty())
        for (const auto& n : lab::list_netns())
          if (n.rfind("weir-" + t->id + "-", 0) == 0) left.push_back(n);
      if (left.empty()) {
        fmt::print("no lab recorded in {}: nothing to tear down\n", *dir);
        rc = 0;
      } else {
        fmt::print(stderr,
                   "weir lab: no record in {}, but these namespaces exist: {} (remove them with "
                   "`ip netns del NAME` once nothing runs in them)\n",
                   *dir, fmt::join(left, ", "));
        rc = 1;
      }
      return;
    }
    auto s = l->down();
    if (!s) {
      rc = fail(s.error());
      return;
    }
    fmt::print("lab {} removed\n", l->id());
    rc = 0;
  });
}

// `weir lab status`
void add_status(CLI::App* parent, int& rc) {
  auto t = std::make_shared<Target>();
  auto* sub = parent->add_subcommand("status", "show a lab: namespaces, agent, pods, services");
  t->add_to(sub);
  sub->callback([t, &rc] {
    auto l = t->load();
    if (!l) {
      rc = fail(l.error());
      return;
    }
    print_lab(*l);
    print_services(*l);
    auto progs = l->attached_programs();
    fmt::print("  programs attached to {}interfaces:\n", l->cluster() ? "pod and underlay " : "pod ");
    if (!progs)
      fmt::print("    ({})\n", progs.error().str());
    else if (progs->empty())
      fmt::print("    (none)\n");
    else
      for (const auto& p : *progs) fmt::print("    {}\n", p.str());
    for (const auto& s : l->state().servers)
      fmt::print("  server pid {} ({}){}\n", s.pid, s.what,
                 lab::process_alive(s) ? "" : " NOT running");
    rc = 0;
  });
}

// `weir lab serve` (hidden: what `server` and the tests run inside a pod)
void add_serve(CLI::App* parent, int& rc) {
  auto o = std::make_shared<lab::ServeOptions>();
  auto* sub = parent->add_subcommand("serve", "answer TCP lines and UDP datagrams with NAME");
  sub->group("");  // hidden
  sub->add_option("--name", o->name, "what to answer")->required();
  sub->add_option("--tcp", o->tcp_ports, "TCP port to listen on (repeatable)");
  sub->add_option("--udp", o->udp_ports, "UDP port to listen on (repeatable)");
  sub->callback([o, &rc] {
    auto s = lab::serve(*o);
    rc = s ? 0 : fail(s.error());
  });
}

// `weir lab guard` (hidden: the lab's guardian; fd 3 is the owner's pipe)
void add_guard(CLI::App* parent, int& rc) {
  auto dir = std::make_shared<std::string>();
  auto* sub = parent->add_subcommand("guard", "tear a lab down when its owner exits");
  sub->group("");
  sub->add_option("--state-dir", *dir, "lab state directory")->required();
  sub->callback([dir, &rc] { rc = lab::run_guardian(*dir, 3); });
}

// `weir lab server`: start a recorded server in a pod
void add_server(CLI::App* parent, int& rc) {
  struct Opts {
    Target t;
    std::string pod;
    std::vector<uint16_t> tcp, udp;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = parent->add_subcommand("server", "start a server in a pod (stopped by `lab down`)");
  o->t.add_to(sub);
  sub->add_option("--pod", o->pod, "pod name, e.g. pod2")->required();
  sub->add_option("--tcp", o->tcp, "TCP port (repeatable)");
  sub->add_option("--udp", o->udp, "UDP port (repeatable)");
  sub->callback([o, &rc] {
    auto l = o->t.load();
    if (!l) {
      rc = fail(l.error());
      return;
    }
    auto rec = l->start_server(o->pod, o->tcp, o->udp);
    if (!rec) {
      rc = fail(rec.error());
      return;
    }
    fmt::print("server in {} answering '{}' on tcp {} udp {} (pid {})\n", o->pod, o->pod,
               fmt::join(o->tcp, ","), fmt::join(o->udp, ","), rec->pid);
    rc = 0;
  });
}

// `weir lab client`
void add_client(CLI::App* parent, int& rc) {
  struct Opts {
    Target t;
    std::string pod, target, proto = "tcp";
    int count = 10;
    int timeout_ms = 2000;
    bool hold = false;
  };
  auto o = std::make_shared<Opts>();
  auto* sub =
      parent->add_subcommand("client", "send requests from a pod; count answers per backend");
  o->t.add_to(sub);
  sub->add_option("--pod", o->pod, "pod to run in")->required();
  sub->add_option("--target", o->target, "IP:PORT")->required();
  sub->add_option("--proto", o->proto, "tcp or udp")
      ->check(CLI::IsMember({"tcp", "udp"}))
      ->capture_default_str();
  sub->add_option("--count", o->count, "connections (tcp) or datagrams (udp)")
      ->capture_default_str();
  sub->add_option("--timeout-ms", o->timeout_ms, "per request")->capture_default_str();
  sub->add_flag("--hold", o->hold,
                "tcp: keep the connections open and send on each every second until Ctrl-C");
  sub->callback([o, &rc] {
    auto l = o->t.load();
    if (!l) {
      rc = fail(l.error());
      return;
    }
    auto target = lab::parse_ip_port(o->target);
    if (!target) {
      rc = fail(target.error());
      return;
    }
    auto pod = l->pod(o->pod);
    if (!pod) {
      rc = fail(pod.error());
      return;
    }
    lab::ClientOptions co;
    co.target = *target;
    co.proto = o->proto == "udp" ? lab::Proto::Udp : lab::Proto::Tcp;
    co.count = o->count;
    co.timeout = std::chrono::milliseconds(o->timeout_ms);
    co.hold = o->hold && co.proto == lab::Proto::Tcp;
    if (co.hold) hold_until_signal(co);
    fmt::print("from {} ({}):\n", pod->name, pod->ip);
    auto rep = l->in_netns(pod->netns, [&] { return lab::run_client(co); });
    if (!rep) {
      rc = fail(rep.error());
      return;
    }
    if (!co.hold) fmt::print("{}", rep->str());
    rc = rep->answers == rep->requests ? 0 : 2;
  });
}

// `weir lab flood`
void add_flood(CLI::App* parent, int& rc) {
  struct Opts {
    Target t;
    std::string pod, target;
    int count = 1000;
    int rate = 0;
    int first_port = 1024;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = parent->add_subcommand(
      "flood", "send TCP SYNs from a pod, one new flow per source port (fills conntrack)");
  o->t.add_to(sub);
  sub->add_option("--pod", o->pod, "pod to send from")->required();
  sub->add_option("--target", o->target, "IP:PORT")->required();
  sub->add_option("--count", o->count, "SYNs to send")->capture_default_str();
  sub->add_option("--rate", o->rate, "SYNs per second (0: as fast as possible)")
      ->capture_default_str();
  sub->add_option("--first-port", o->first_port, "first source port (ports cycle up to 65535)")
      ->capture_default_str();
  sub->callback([o, &rc] {
    auto l = o->t.load();
    if (!l) {
      rc = fail(l.error());
      return;
    }
    auto target = lab::parse_ip_port(o->target);
    if (!target) {
      rc = fail(target.error());
      return;
    }
    auto pod = l->pod(o->pod);
    if (!pod) {
      rc = fail(pod.error());
      return;
    }
    if (o->first_port < 1 || o->first_port > 65535) {
      rc = fail(Error{EINVAL, fmt::format("--first-port {}: must be 1..65535", o->first_port)});
      return;
    }
    lab::FloodOptions fo;
    fo.target = *target;
    fo.count = o->count;
    fo.rate = o->rate;
    fo.first_port = static_cast<uint16_t>(o->first_port);
    auto rep = l->in_netns(pod->netns, [&] { return lab::syn_flood(fo); });
    if (!rep) {
      rc = fail(rep.error());
      return;
    }
    fmt::print("from {}: {}", pod->name, rep->str());
    rc = 0;
  });
}

// `weir lab apply` and `weir lab delete`: datastore files
void add_apply(CLI::App* parent, int& rc) {
  struct Opts {
    Target t;
    std::vector<std::string> files;
  };
  auto o = std::make_shared<Opts>();
  auto* sub =
      parent->add_subcommand("apply", "copy YAML files into the lab's datastore (atomically)");
  o->t.add_to(sub);
  sub->add_option("files", o->files, "resource files")->required()->check(CLI::ExistingFile);
  sub->callback([o, &rc] {
    auto l = o->t.load();
    if (!l) {
      rc = fail(l.error());
      return;
    }
    for (const auto& f : o->files) {
      std::ifstream in(f);
      std::stringstream ss;
      ss << in.rdbuf();
      std::string name = fs::path(f).filename().string();
      if (auto s = l->write_resource(name, ss.str()); !s) {
        rc = fail(s.error());
        return;
      }
      fmt::print("{} -> {}/{}\n", f, l->datastore_dir(), name);
    }
    rc = 0;
  });
}

void add_delete(CLI::App* parent, int& rc) {
  struct Opts {
    Target t;
    std::vector<std::string> names;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = parent->add_subcommand("delete", "remove files from the lab's datastore");
  o->t.add_to(sub);
  sub->add_option("names", o->names, "file names in the datastore")->required();
  sub->callback([o, &rc] {
    auto l = o->t.load();
    if (!l) {
      rc = fail(l.error());
      return;
    }
    for (const auto& n : o->names) {
      if (auto s = l->remove_resource(n); !s) {
        rc = fail(s.error());
        return;
      }
    }
    rc = 0;
  });
}

// `weir lab agent start|stop|restart`
void add_agent(CLI::App* parent, int& rc) {
  struct Opts {
    Target t;
    std::string action, node;
    std::vector<std::string> drop_caps;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = parent->add_subcommand("agent", "start, stop or restart the lab's agent(s)");
  o->t.add_to(sub);
  sub->add_option("--node", o->node, "a cluster's node (name or n<K>; default: every node)");
  sub->add_option("--drop-cap", o->drop_caps,
                  "start the agent without this capability (CAP_PERFMON, ...; repeatable): how it fares "
                  "with less than it needs");
  sub->add_option("action", o->action, "start | stop | restart")
      ->required()
      ->check(CLI::IsMember({"start", "stop", "restart"}));
  sub->callback([o, &rc] {
    uint64_t drop = 0;
    for (const auto& name : o->drop_caps) {
      auto cap = caps::from_name(name);
      if (!cap) {
        fmt::print(stderr, "weir lab agent: --drop-cap: '{}' is not a capability (CAP_PERFMON, CAP_SYS_ADMIN, ...)\n",
                   name);
        rc = 2;
        return;
      }
      drop |= uint64_t{1} << *cap;
    }
    if (drop != 0 && o->action == "stop") {
      fmt::print(stderr, "weir lab agent: --drop-cap goes with start or restart, not stop\n");
      rc = 2;
      return;
    }
    auto l = o->t.load();
    if (!l) {
      rc = fail(l.error());
      return;
    }
    if (o->action != "start") {
      if (auto s = l->stop_agent(SIGTERM, o->node); !s) {
        rc = fail(s.error());
        return;
      }
      fmt::print("agent stopped\n");
    }
    if (o->action != "stop") {
      if (auto s = l->start_agent(o->node, drop); !s) {
        rc = fail(s.error());
        return;
      }
      for (const auto& n : l->nodes())
        if (o->node.empty() || l->node(o->node)->name == n.name)
          fmt::print("agent started{} (pid {})\n", l->cluster() ? " on " + n.name : "",
                     l->agent_pid(n.name));
    }
    rc = 0;
  });
}

// `weir lab bpf`: `weir --pin-root <lab pin root> bpf ARGS...` inside the node netns
void add_bpf(CLI::App* parent, int& rc) {
  struct Opts {
    Target t;
    std::string node;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = parent->add_subcommand(
      "bpf", "run `weir bpf ARGS` in the lab's node netns with its pin root (e.g. nat dump)");
  o->t.add_to(sub);
  sub->add_option("--node", o->node, "a cluster's node (name or n<K>; default: the first)");
  sub->allow_extras();
  sub->prefix_command();  // everything after the options goes to `weir bpf`
  sub->callback([o, sub, &rc] {
    auto l = o->t.load();
    if (!l) {
      rc = fail(l.error());
      return;
    }
    auto node = l->node(o->node);
    if (!node) {
      rc = fail(node.error());
      return;
    }
    std::vector<std::string> argv{l->weir_binary(), "--pin-root", node->pin_root, "bpf"};
    for (const auto& a : sub->remaining()) argv.push_back(a);
    auto r = lab::run_process(argv, lab::RunOptions::in(node->name));
    rc = r ? relay(*r) : fail(r.error());
  });
}

// `weir lab exec`: run a command in the node netns or a pod netns (mount namespace unchanged,
// unlike `ip netns exec`, so /sys/fs/bpf stays visible)
void add_exec(CLI::App* parent, int& rc) {
  struct Opts {
    Target t;
    std::string pod, node;
    std::vector<std::string> cmd;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = parent->add_subcommand("exec", "run a command in a node's (or --pod's) netns");
  o->t.add_to(sub);
  sub->add_option("--pod", o->pod, "pod to run in (default: the node)");
  sub->add_option("--node", o->node, "a cluster's node (name or n<K>; default: the first)");
  sub->add_option("cmd", o->cmd, "command and arguments (after --)")->required();
  sub->callback([o, &rc] {
    auto l = o->t.load();
    if (!l) {
      rc = fail(l.error());
      return;
    }
    auto node = l->node(o->node);
    if (!node) {
      rc = fail(node.error());
      return;
    }
    std::string ns = node->name;
    if (!o->pod.empty()) {
      auto p = l->pod(o->pod);
      if (!p) {
        rc = fail(p.error());
        return;
      }
      ns = p->netns;
    }
    auto r = lab::run_process(o->cmd, lab::RunOptions::in(ns, std::chrono::hours(1)));
    rc = r ? relay(*r) : fail(r.error());
  });
}

}  // namespace

void add_lab_commands(CLI::App& app, GlobalOptions& g, int& rc) {
  auto* labcmd = app.add_subcommand("lab", "build and tear down network-namespace topologies");
  labcmd->require_subcommand(1);
  add_up(labcmd, g, rc);
  add_down(labcmd, rc);
  add_status(labcmd, rc);
  add_serve(labcmd, rc);
  add_guard(labcmd, rc);
  add_server(labcmd, rc);
  add_client(labcmd, rc);
  add_flood(labcmd, rc);
  add_apply(labcmd, rc);
  add_delete(labcmd, rc);
  add_agent(labcmd, rc);
  add_bpf(labcmd, rc);
  add_exec(labcmd, rc);
}

}  // namespace weir::cli
