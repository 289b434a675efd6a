// The BPF debug log through the agent (docs/bpf-log.md): DataplaneConfig bpfLogLevel: Debug
// makes the agent load the log variant and put it on every interface; with bpfLogFilters only the
// packets a pcap filter matches are logged, and a filter that does not compile is refused by
// `weir apply` and by the agent, the one in place staying; without a filter, `weir bpf tracelog`
// shows the lab's traffic in the seed's format; back to Off, the production build goes back on
// every hook (here: the profiling build, bpfProfiling) while a client keeps connecting through a
// service: no connection fails and no TCP segment is retransmitted (a packet lost at a hook would
// be), new traffic is not logged, and `weir bpf profiling e2e` shows it, then resets.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "e2e_util.h"
#include "lab/lab.h"
#include "lab/process.h"
#include "lab/traffic.h"

namespace weir::e2e {
namespace {

using lab::Lab;
using namespace std::chrono_literals;

constexpr const char* kVip = "10.96.0.10";

std::string config(const char* level, const char* profiling = "Disabled") {
  return fmt::format("apiVersion: weir.dev/v1\nkind: DataplaneConfig\nmetadata: {{name: default}}\n"
                     "spec: {{minSyncPeriod: 200ms, bpfLogLevel: {}, bpfProfiling: {}}}\n",
                     level, profiling);
}

std::string filtered_config(const std::string& filter) {
  return fmt::format("apiVersion: weir.dev/v1\nkind: DataplaneConfig\nmetadata: {{name: default}}\n"
                     "spec:\n  minSyncPeriod: 200ms\n  bpfLogLevel: Debug\n  bpfLogFilters:\n    all: \"{}\"\n",
                     filter);
}

// `weir bpf tracelog --json --iface IFACE`, in a mount namespace of its own (tracefs is mounted
// there when the machine has not: the test leaves no mount behind). One JSON object per line.
std::vector<nlohmann::json> tracelog(const std::string& iface) {
  std::vector<nlohmann::json> out;
  auto r = lab::run_checked(
      {"unshare", "--mount", "--propagation", "private", kWeirBinary, "bpf", "tracelog", "--json", "--iface", iface});
  EXPECT_TRUE(r.ok()) << r.error().str();
  if (!r.ok()) return out;
  std::istringstream in(*r);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

size_t count_message(const std::vector<nlohmann::json>& lines, const std::string& prefix) {
  size_t n = 0;
  for (const auto& l : lines)
    if (l["message"].get<std::string>().rfind(prefix, 0) == 0) n++;
  return n;
}

// RetransSegs of the calling thread's network namespace (/proc/net/snmp, "Tcp:" lines).
Result<long> tcp_retransmits() {
  std::ifstream f("/proc/thread-self/net/snmp");
  if (!f) return errno_error("opening /proc/thread-self/net/snmp");
  std::string header, values;
  for (std::string line; std::getline(f, line);) {
    if (line.rfind("Tcp:", 0) != 0) continue;
    if (header.empty()) {
      header = line;
    } else {
      values = line;
      break;
    }
  }
  std::istringstream h(header), v(values);
  for (std::string name, value; h >> name && v >> value;)
    if (name == "RetransSegs") return std::stol(value);
  return make_error("no RetransSegs in /proc/net/snmp");
}

struct Tally {
  int ok = 0;
  std::vector<std::string> errors;
};

Tally connect_until(const std::atomic<bool>& stop, int at_least) {
  Tally t;
  while (!stop.load() || t.ok + static_cast<int>(t.errors.size()) < at_least) {
    auto fd = lab::tcp_connect(kVip, 80, 5s);
    if (!fd) {
      t.errors.push_back(fd.error().str());
      continue;
    }
    auto name = lab::tcp_request(fd->get(), 5s);
    if (!name) {
      t.errors.push_back(name.error().str());
      continue;
    }
    t.ok++;
  }
  return t;
}

// The lines of `iface` that name a packet ("IP a:p -> b:q proto=n"), as text, for messages.
std::vector<std::string> tuples(const std::vector<nlohmann::json>& lines) {
  std::vector<std::string> out;
  for (const auto& l : lines) {
    const std::string m = l["message"].get<std::string>();
    if (m.rfind("IP ", 0) == 0) out.push_back(m);
  }
  return out;
}

// One connection from pod1 to `addr`:`port` and back; the client's "ip:port".
Result<std::string> one_connection(const Lab& lab, const std::string& addr, uint16_t port) {
  return lab.in_pod("pod1", [&]() -> Result<std::string> {
    auto fd = lab::tcp_connect(addr, port, 5s);
    if (!fd) return fd.error();
    auto local = lab::local_address(fd->get());
    if (!local) return local.error();
    auto name = lab::tcp_request(fd->get(), 5s);
    if (!name) return name.error();
    return *local;
  });
}

// `weir bpf trace ARGS` on the lab's node, in a mount namespace of its own: it reads the trace
// buffer, mounting tracefs when the machine has not (as bpftool does); the test leaves no mount.
Result<std::string> weir_trace(const Lab& lab, const std::vector<std::string>& args) {
  std::vector<std::string> cmd{"unshare", "--mount", "--propagation", "private", lab.weir_binary(), "--pin-root",
                               lab.pin_root(), "bpf", "trace"};
  cmd.insert(cmd.end(), args.begin(), args.end());
  return lab::run_checked(cmd, lab::RunOptions::in(lab.node_netns()));
}

// `weir bpf trace` (docs/bpf-trace.md) on the lab: pod1's SYN to the service, run through the
// trace build over the agent's maps, shows the path a real one takes (conntrack miss, NAT to the
// backend, redirect), then the real one takes it; the trace leaves conntrack and the counters as
// they were. Bad arguments get errors that name them. Run before any traffic.
void trace_checks(const Lab& lab, const lab::Pod& pod1, const lab::Pod& pod2) {
  auto ct_before = lab.run_weir({"bpf", "conntrack", "dump", "--json"});
  auto counters_before = lab.run_weir({"bpf", "counters", "dump", "--json"});
  ASSERT_TRUE(ct_before.ok() && counters_before.ok());
  auto out = weir_trace(lab, {"--iface", pod1.host_if, "--ingress", "--src", pod1.ip + ":40123", "--dst",
                           std::string(kVip) + ":80", "--syn", "--json"});
  ASSERT_TRUE(out.ok()) << out.error().str();
  const auto j = nlohmann::json::parse(*out);
  EXPECT_EQ(j["verdict"], "REDIRECT") << j.dump(2);
  std::vector<std::string> path;
  for (const auto& l : j["path"]) path.push_back(l.get<std::string>());
  auto has = [&](const std::string& m) {
    for (const auto& p : path)
      if (p.rfind(m, 0) == 0) return true;
    return false;
  };
  EXPECT_TRUE(has(fmt::format("IP {}:40123 -> 10.96.0.10:80 proto=6", pod1.ip))) << j.dump(2);
  EXPECT_TRUE(has("CT: miss")) << j.dump(2);
  EXPECT_TRUE(has(fmt::format("NAT: frontend 10.96.0.10:80 -> backend {}:8080", pod2.ip))) << j.dump(2);
  EXPECT_TRUE(has("Redirect to ifindex=")) << j.dump(2);
  EXPECT_TRUE(has("Final result=REDIRECT (7)")) << j.dump(2);
  // Nothing written: no conntrack entry for the traced flow, no packet counted.
  EXPECT_EQ(*lab.run_weir({"bpf", "conntrack", "dump", "--json"}), *ct_before);
  EXPECT_EQ(*lab.run_weir({"bpf", "counters", "dump", "--json"}), *counters_before);
  // A real connection takes the same way.
  auto real = lab.in_pod("pod1", [] {
    auto fd = lab::tcp_connect(kVip, 80, 5s);
    if (!fd) return Result<std::string>(fd.error());
    return lab::tcp_request(fd->get(), 5s);
  });
  ASSERT_TRUE(real.ok()) << real.error().str();
  EXPECT_EQ(*real, "pod2");

  // Text output, and errors naming what is wrong.
  auto text = weir_trace(lab, {"--iface", pod1.host_if, "--ingress", "--src", pod1.ip, "--dst",
                            std::string(kVip) + ":80", "--syn"});
  ASSERT_TRUE(text.ok()) << text.error().str();
  EXPECT_NE(text->find("verdict: REDIRECT (7)"), std::string::npos) << *text;
  struct Bad {
    std::vector<std::string> args;
    std::string says;
  };
  for (const Bad& b : std::vector<Bad>{
           {{"--iface", "weirnosuch0", "--ingress", "--src", pod1.ip, "--dst", "10.96.0.10:80"}, "--iface weirnosuch0"},
           {{"--iface", pod1.host_if, "--src", pod1.ip, "--dst", "10.96.0.10:80"}, "exactly one of --ingress"},
           {{"--iface", pod1.host_if, "--ingress", "--src", "10.65.0.300", "--dst", "10.96.0.10:80"}, "--src 10.65.0.300"},
           {{"--iface", pod1.host_if, "--ingress", "--src", pod1.ip, "--dst", "10.96.0.10"}, "a port is needed"},
           {{"--iface", pod1.host_if, "--ingress", "--src", pod1.ip, "--dst", "10.96.0.10:80", "--proto", "sctp"},
            "--proto sctp"},
       }) {
    auto r = weir_trace(lab, b.args);
    ASSERT_FALSE(r.ok()) << fmt::format("{}", fmt::join(b.args, " "));
    EXPECT_NE(r.error().msg.find(b.says), std::string::npos) << r.error().str();
  }
}

// One lab and one agent for the whole story (loading the log variant costs ~30 s of verifier
// under the 6.1 guest's emulation): a pcap filter first, then Debug everywhere, then Off.
TEST(BpfLogE2E, AFilterThenEveryPacketThenOffAndProfilingWithoutLosingAPacket) {
  require_root();
  lab::LabSpec spec = lab_spec(2);
  spec.start_agent = false;
  auto up = Lab::up(spec);
  ASSERT_TRUE(up.ok()) << up.error().str();
  Lab lab = std::move(*up);
  const auto pod1 = *lab.pod("pod1");
  const auto pod2 = *lab.pod("pod2");

  // ---- 1. bpfLogFilters: the example, the client pod and the service's port as the pod
  // sends them (before NAT).
  const std::string good = fmt::format("host {} and tcp port 80", pod1.ip);
  ASSERT_TRUE(lab.write_resource("dataplaneconfig.yaml", filtered_config(good)).ok());
  ASSERT_TRUE(lab.start_agent().ok());
  ASSERT_TRUE(lab.start_server("pod2", {8080}, {}).ok());
  ASSERT_TRUE(write_web_service(lab, kVip, {"pod2"}).ok());
  ASSERT_TRUE(wait_for_nat_backend(lab, pod2.ip + ":8080")) << tail(lab.agent_log(), 30);
  ASSERT_NO_FATAL_FAILURE(trace_checks(lab, pod1, pod2));

  // Through the service (port 80: matched) and straight to the backend (8080: not matched).
  // (A client port may serve both connections: they differ by their destination.)
  auto check_filtered = [&](const std::string& client) {
    const auto at_client = tracelog(pod1.host_if);
    const auto seen = tuples(at_client);
    const std::string all = testing::PrintToString(seen);
    // The client's packets to the VIP (SYN, ACK, request, FIN...). The replies are not: they
    // leave the backend from port 8080 and are reverse-NATed on the way, after the filter, and
    // go straight into pod1 (no hook of pod1's interface sees them).
    EXPECT_GE(count_message(at_client, "IP " + client + " -> 10.96.0.10:80 proto=6"), 2u) << all;
    for (const auto& t : seen) EXPECT_EQ(t.find(":8080"), std::string::npos) << "not matched, logged: " << t;
    // At the backend every packet is on port 8080 (after NAT, or sent there): none matches.
    EXPECT_TRUE(tuples(tracelog(pod2.host_if)).empty()) << testing::PrintToString(tuples(tracelog(pod2.host_if)));
  };
  auto via_service = one_connection(lab, kVip, 80);
  ASSERT_TRUE(via_service.ok()) << via_service.error().str();
  ASSERT_TRUE(one_connection(lab, pod2.ip, 8080).ok());
  check_filtered(*via_service);

  // `weir apply` refuses an expression libpcap rejects, naming it; nothing is written.
  const std::string bad_file = lab.state_dir() + "/bad-filter.yaml";
  {
    std::ofstream f(bad_file);
    f << filtered_config("tcp prot 80");
  }
  auto applied = lab.run_weir({"apply", "-f", bad_file, "--datastore", lab.datastore_spec()});
  ASSERT_FALSE(applied.ok()) << *applied;
  EXPECT_NE(applied.error().msg.find("spec.bpfLogFilters[\"all\"]: pcap filter \"tcp prot 80\""), std::string::npos)
      << applied.error().str();
  std::filesystem::remove(bad_file);

  // Written behind weir apply's back: the agent refuses it, and the filter in place stays.
  ASSERT_TRUE(lab.write_resource("dataplaneconfig.yaml", filtered_config("tcp prot 80")).ok());
  ASSERT_TRUE(wait_until([&] { return lab.agent_log().find("DataplaneConfig refused: BPF log") != std::string::npos; },
                         20s))
      << tail(lab.agent_log(), 30);
  EXPECT_NE(lab.agent_log().find("pcap filter \"tcp prot 80\""), std::string::npos) << tail(lab.agent_log(), 30);
  auto again = one_connection(lab, kVip, 80);
  ASSERT_TRUE(again.ok()) << again.error().str();
  ASSERT_TRUE(one_connection(lab, pod2.ip, 8080).ok());
  check_filtered(*again);

  // ---- 2. Debug without a filter: every packet, a connection logged at both ends.
  ASSERT_TRUE(lab.write_resource("dataplaneconfig.yaml", config("Debug")).ok());
  // The filters' slots emptied: the agent took the new settings.
  ASSERT_TRUE(wait_until(
      [&] {
        auto c = one_connection(lab, pod2.ip, 8080);
        if (!c) return false;
        return count_message(tracelog(pod1.host_if), "IP " + *c + " -> " + pod2.ip + ":8080 proto=6") > 0;
      },
      20s))
      << tail(lab.agent_log(), 30);
  auto first = one_connection(lab, kVip, 80);
  ASSERT_TRUE(first.ok()) << first.error().str();
  const std::string client = *first;  // "10.65.0.x:port"
  auto out = tracelog(pod1.host_if);
  ASSERT_FALSE(out.empty()) << "nothing logged for " << pod1.host_if << "\n" << tail(lab.agent_log(), 30);
  std::string all;
  for (const auto& l : out) all += l.dump() + "\n";
  // Every packet of the connection from the client (SYN, ACK, request, FIN...): at least two.
  EXPECT_GE(count_message(out, "IP " + client + " -> 10.96.0.10:80 proto=6"), 2u) << all;
  EXPECT_GE(count_message(out, "NAT: frontend 10.96.0.10:80 -> backend " + pod2.ip + ":8080"), 1u) << all;
  EXPECT_GE(count_message(out, "Final result="), 1u) << all;
  // The client's packets at its own interface: the workload's egress (E); the same packets,
  // NAT done, at the backend's interface: the backend's ingress (I).
  for (const auto& l : out)
    if (l["message"] == "IP " + client + " -> 10.96.0.10:80 proto=6") EXPECT_EQ(l["dir"], "E") << l.dump();
  auto in = tracelog(pod2.host_if);
  const std::string at_backend = "IP " + client + " -> " + pod2.ip + ":8080 proto=6";
  std::string all_in;
  for (const auto& l : in) all_in += l.dump() + "\n";
  EXPECT_GE(count_message(in, at_backend), 1u) << all_in;
  for (const auto& l : in)
    if (l["message"] == at_backend) EXPECT_EQ(l["dir"], "I") << l.dump();

  // ---- 3. Off, with profiling, while pod1 keeps connecting: the profiling build (which has no
  // log statement) goes on every hook in place of the log variant.
  auto before = lab.in_pod("pod1", [] { return tcp_retransmits(); });
  ASSERT_TRUE(before.ok()) << before.error().str();
  std::atomic<bool> stop{false};
  auto client_run = std::async(std::launch::async, [&] { return lab.in_pod("pod1", [&] { return connect_until(stop, 20); }); });
  std::this_thread::sleep_for(500ms);
  ASSERT_TRUE(lab.write_resource("dataplaneconfig.yaml", config("Off", "Enabled")).ok());
  const bool switched = wait_until(
      [&] {
        return lab.agent_log().find("bpfLogLevel Off, bpfProfiling Enabled: the profiling build of the TC "
                                    "programs goes on every interface") != std::string::npos;
      },
      // Loading the profiling build: seconds here, more than 30 s in the 6.1 guest's emulation
      // while the test command builds and tests beside it (a run missed it at 30 s).
      120s);
  std::this_thread::sleep_for(1s);  // the sync that attaches them, then some traffic after it
  stop = true;
  auto tally = client_run.get();
  ASSERT_TRUE(switched) << tail(lab.agent_log(), 40);
  ASSERT_TRUE(tally.ok()) << tally.error().str();
  EXPECT_TRUE(tally->errors.empty()) << testing::PrintToString(tally->errors);
  EXPECT_GE(tally->ok, 20);
  auto after = lab.in_pod("pod1", [] { return tcp_retransmits(); });
  ASSERT_TRUE(after.ok()) << after.error().str();
  EXPECT_EQ(*after, *before) << "TCP segments were retransmitted while the programs were swapped";

  // Nothing is logged any more: the log variant is gone from every hook.
  const size_t logged = tracelog(pod1.host_if).size();
  auto prof0 = lab.run_weir({"bpf", "profiling", "e2e", "--json"});  // resets what the switch saw
  ASSERT_TRUE(prof0.ok()) << prof0.error().str();
  auto more = lab.in_pod("pod1", [] { return connect_until(std::atomic<bool>{true}, 3); });
  ASSERT_TRUE(more.ok());
  EXPECT_TRUE(more->errors.empty());
  EXPECT_EQ(tracelog(pod1.host_if).size(), logged);

  // The profile of those 3 connections (issue 11 §2): the client's SYNs new at its interface's
  // ingress (no conntrack entry yet), its other packets established; at the backend's interface
  // every packet finds the entry the client's side created: established.
  auto table = lab.run_weir({"bpf", "profiling", "e2e", "--json"});
  ASSERT_TRUE(table.ok()) << table.error().str();
  const auto rows = nlohmann::json::parse(*table);
  auto row = [&](const nlohmann::json& rs, const std::string& iface) -> nlohmann::json {
    for (const auto& r : rs)
      if (r["ifname"] == iface) return r;
    return nullptr;
  };
  const auto client_row = row(rows, pod1.host_if), backend_row = row(rows, pod2.host_if);
  ASSERT_FALSE(client_row.is_null()) << rows.dump(2);
  ASSERT_FALSE(backend_row.is_null()) << rows.dump(2);
  EXPECT_EQ(client_row["ingress"]["new"]["runs"], 3) << rows.dump(2);
  EXPECT_GE(client_row["ingress"]["est"]["runs"].get<int>(), 3 * 3) << "ACK, request, FIN... per connection\n" << rows.dump(2);
  EXPECT_GT(client_row["ingress"]["est"]["avg_ns"].get<double>(), 0.0);
  EXPECT_EQ(backend_row["egress"]["new"]["runs"], 0) << rows.dump(2);
  // (Only each connection's first packet: the later ones go straight into the pod, redirected
  // to its peer by the client's side.)
  EXPECT_GE(backend_row["egress"]["est"]["runs"].get<int>(), 3) << rows.dump(2);
  EXPECT_GE(backend_row["ingress"]["est"]["runs"].get<int>(), 3 * 2) << "SYN-ACK, response...\n" << rows.dump(2);
  // Printed, then reset: nothing for the client's interface until it sends again.
  auto text = lab.run_weir({"bpf", "profiling", "e2e"});
  ASSERT_TRUE(text.ok()) << text.error().str();
  EXPECT_NE(text->find("INGRESS NEW"), std::string::npos) << *text;
  EXPECT_EQ(text->find(pod1.host_if), std::string::npos) << *text;

  if (HasFailure()) std::cerr << tail(lab.agent_log(), 60);
  EXPECT_TRUE(lab.down().ok());
}

}  // namespace
}  // namespace weir::e2e
