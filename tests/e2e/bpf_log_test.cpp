// The BPF debug log through the agent (docs/bpf-log.md): DataplaneConfig bpfLogLevel: Debug
// makes the agent load the log variant and put it on every interface; `weir bpf tracelog` then
// shows the lab's traffic in the seed's format; back to Off, the production build goes back on
// every hook while a client keeps connecting through a service: no connection fails and no TCP
// segment is retransmitted (a packet lost at a hook would be), and new traffic is not logged.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
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

std::string config(const char* level) {
  return fmt::format("apiVersion: weir.dev/v1\nkind: DataplaneConfig\nmetadata: {{name: default}}\n"
                     "spec: {{minSyncPeriod: 200ms, bpfLogLevel: {}}}\n",
                     level);
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

TEST(BpfLogE2E, DebugLogsTheLabsTrafficAndOffPutsTheProductionBuildBackWithoutLosingAPacket) {
  require_root();
  lab::LabSpec spec = lab_spec(2);
  spec.start_agent = false;
  auto up = Lab::up(spec);
  ASSERT_TRUE(up.ok()) << up.error().str();
  Lab lab = std::move(*up);
  ASSERT_TRUE(lab.write_resource("dataplaneconfig.yaml", config("Debug")).ok());
  ASSERT_TRUE(lab.start_agent().ok());
  ASSERT_TRUE(lab.start_server("pod2", {8080}, {}).ok());
  ASSERT_TRUE(write_web_service(lab, kVip, {"pod2"}).ok());
  const auto pod1 = *lab.pod("pod1");
  const auto pod2 = *lab.pod("pod2");
  ASSERT_TRUE(wait_until(
      [&] {
        auto out = lab.run_weir({"bpf", "nat", "dump"});
        return out.ok() && out->find(pod2.ip + ":8080") != std::string::npos;
      },
      20s))
      << tail(lab.agent_log(), 30);

  // Debug from the start: the agent loaded the log variant; a connection is logged at both ends.
  auto first = lab.in_pod("pod1", [&]() -> Result<std::string> {
    auto fd = lab::tcp_connect(kVip, 80, 5s);
    if (!fd) return fd.error();
    auto local = lab::local_address(fd->get());
    if (!local) return local.error();
    auto name = lab::tcp_request(fd->get(), 5s);
    if (!name) return name.error();
    return *local;
  });
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

  // Off while pod1 keeps connecting: the production build goes back on every hook.
  auto before = lab.in_pod("pod1", [] { return tcp_retransmits(); });
  ASSERT_TRUE(before.ok()) << before.error().str();
  std::atomic<bool> stop{false};
  auto client_run = std::async(std::launch::async, [&] { return lab.in_pod("pod1", [&] { return connect_until(stop, 20); }); });
  std::this_thread::sleep_for(500ms);
  ASSERT_TRUE(lab.write_resource("dataplaneconfig.yaml", config("Off")).ok());
  const bool switched = wait_until(
      [&] {
        return lab.agent_log().find("bpfLogLevel Off: the production build of the TC programs goes on every "
                                    "interface") != std::string::npos;
      },
      30s);
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

  // Nothing is logged any more: the production programs are attached.
  const size_t logged = tracelog(pod1.host_if).size();
  auto more = lab.in_pod("pod1", [] { return connect_until(std::atomic<bool>{true}, 3); });
  ASSERT_TRUE(more.ok());
  EXPECT_TRUE(more->errors.empty());
  EXPECT_EQ(tracelog(pod1.host_if).size(), logged);
  auto attached = lab.attached_programs();
  ASSERT_TRUE(attached.ok()) << attached.error().str();
  EXPECT_FALSE(attached->empty());

  if (HasFailure()) std::cerr << tail(lab.agent_log(), 60);
  EXPECT_TRUE(lab.down().ok());
}

}  // namespace
}  // namespace weir::e2e
