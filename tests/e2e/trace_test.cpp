// `weir bpf trace` against a live agent (docs/bpf-trace.md): a pod's packet to a service is
// run through the trace build over the agent's maps and shows the path a real one takes
// (conntrack miss, NAT to the backend, redirect), then the real one takes it; the trace leaves
// conntrack and the counters as they were. Bad arguments get errors that name them.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "e2e_util.h"
#include "lab/lab.h"
#include "lab/traffic.h"

namespace weir::e2e {
namespace {

using lab::Lab;
using namespace std::chrono_literals;

constexpr const char* kVip = "10.96.0.10";

TEST(TraceE2E, ATraceShowsThePathOfAPacketAndChangesNothing) {
  require_root();
  auto up = Lab::up(lab_spec(2));
  ASSERT_TRUE(up.ok()) << up.error().str();
  Lab lab = std::move(*up);
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

  auto ct_before = lab.run_weir({"bpf", "conntrack", "dump", "--json"});
  auto counters_before = lab.run_weir({"bpf", "counters", "dump", "--json"});
  ASSERT_TRUE(ct_before.ok() && counters_before.ok());
  auto out = lab.run_weir({"bpf", "trace", "--iface", pod1.host_if, "--ingress", "--src", pod1.ip + ":40123", "--dst",
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
  auto text = lab.run_weir({"bpf", "trace", "--iface", pod1.host_if, "--ingress", "--src", pod1.ip, "--dst",
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
    std::vector<std::string> args{"bpf", "trace"};
    args.insert(args.end(), b.args.begin(), b.args.end());
    auto r = lab.run_weir(args);
    ASSERT_FALSE(r.ok()) << fmt::format("{}", fmt::join(args, " "));
    EXPECT_NE(r.error().msg.find(b.says), std::string::npos) << r.error().str();
  }
  if (HasFailure()) std::cerr << tail(lab.agent_log(), 40);
  EXPECT_TRUE(lab.down().ok());
}

}  // namespace
}  // namespace weir::e2e
