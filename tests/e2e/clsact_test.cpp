// The clsact + cls_bpf attach path (what Debian 12's 6.1 kernel, which has no tcx, runs),
// exercised end to end on this kernel by starting the agent with --tc-mode clsact: services
// through the VIP, policy, an agent restart that replaces the filters without leaving a second
// one, and a cleanup that leaves no filter and no clsact qdisc.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "e2e_util.h"
#include "lab/lab.h"
#include "lab/traffic.h"

namespace weir::e2e {
namespace {

using lab::Lab;

TEST(ClsactE2E, ServicesPolicyRestartAndCleanupWithClsactFilters) {
  require_root();
  lab::LabSpec spec = lab_spec();
  spec.agent_tc_mode = "clsact";
  auto up = Lab::up(spec);
  ASSERT_TRUE(up.ok()) << up.error().str();
  Lab& l = *up;
  ASSERT_TRUE(l.start_server("pod2", {8080}, {}).ok());
  ASSERT_TRUE(l.start_server("pod3", {8080}, {}).ok());
  EXPECT_NE(l.agent_log().find("TC attach mode clsact (--tc-mode clsact)"), std::string::npos)
      << tail(l.agent_log(), 20);

  // Every pod's host veth carries weir_from_wl on tc ingress and weir_to_wl on tc egress, as
  // cls_bpf filters, and nothing on tcx.
  auto filters = [&] {
    std::map<std::string, std::multiset<std::string>> by_if;  // host_if -> "hook name"
    auto a = l.attached_programs();
    EXPECT_TRUE(a.ok()) << a.error().str();
    if (a.ok())
      for (const auto& p : *a) by_if[p.ifname].insert(p.hook + " " + p.prog_name);
    return by_if;
  };
  ASSERT_TRUE(wait_until([&] { return filters().size() == 3; }, 10s));
  std::map<std::string, uint32_t> ids_before;
  for (const auto& p : l.pods()) {
    auto f = filters()[p.host_if];
    EXPECT_EQ(f, (std::multiset<std::string>{"tc egress weir_to_wl", "tc ingress weir_from_wl"}))
        << p.host_if;
  }
  auto a0 = l.attached_programs();
  ASSERT_TRUE(a0.ok());
  for (const auto& p : *a0) ids_before[p.ifname + p.hook] = p.prog_id;

  // A ClusterIP service with pod2 and pod3 as backends.
  ASSERT_TRUE(write_web_service(l, "10.96.0.10", {"pod2", "pod3"}, "svc.yaml").ok());
  std::set<std::string> seen;
  ASSERT_TRUE(wait_until(
      [&] {
        auto r = l.in_pod("pod1", [] {
          lab::ClientOptions o;
          o.target = {"10.96.0.10", 80};
          o.count = 10;
          o.timeout = 1s;
          return lab::run_client(o);
        });
        if (r.ok())
          for (const auto& [name, n] : r->backends) seen.insert(name);
        return seen == std::set<std::string>{"pod2", "pod3"};
      },
      15s));

  // Policy on pod3: only pod2 may connect, so pod1 no longer reaches pod3 (directly or through
  // the VIP).
  std::string np =
      "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
      "metadata: {name: pod3-from-pod2, namespace: default}\n"
      "spec:\n  podSelector: {matchLabels: {app: pod3}}\n  ingress:\n"
      "  - from:\n    - podSelector: {matchLabels: {app: pod2}}\n";
  ASSERT_TRUE(l.write_resource("np.yaml", np).ok());
  std::string pod3_ip = l.pod("pod3")->ip;
  auto pod1_reaches_pod3 = [&] {
    auto r = l.in_pod("pod1", [&]() -> Result<std::string> {
      auto fd = lab::tcp_connect(pod3_ip, 8080, 300ms);
      if (!fd) return fd.error();
      return lab::tcp_request(fd->get(), 300ms);
    });
    return r.ok();
  };
  ASSERT_TRUE(wait_until([&] { return !pod1_reaches_pod3(); }, 10s));

  // A held connection through the VIP survives an agent restart; the restart replaces the
  // filters in place (new program ids, still exactly one per hook).
  // (A connection the VIP sends to pod3 is denied by pod3's policy: retry until pod2 answers.)
  Result<Fd> fd = Error{ETIMEDOUT, "not tried"};
  for (int i = 0; i < 20 && !fd.ok(); ++i) {
    fd = l.in_pod("pod1", [] { return lab::tcp_connect("10.96.0.10", 80, 500ms); });
  }
  ASSERT_TRUE(fd.ok()) << fd.error().str();
  auto first = lab::tcp_request(fd->get());
  ASSERT_TRUE(first.ok()) << first.error().str();
  ASSERT_TRUE(l.stop_agent().ok());
  ASSERT_TRUE(l.start_agent().ok());
  for (int i = 0; i < 3; ++i) {
    auto r = lab::tcp_request(fd->get());
    ASSERT_TRUE(r.ok()) << r.error().str();
    EXPECT_EQ(*r, *first);
  }
  ASSERT_TRUE(wait_until(
      [&] {
        auto a = l.attached_programs();
        if (!a.ok() || a->size() != 6) return false;
        for (const auto& p : *a)
          if (ids_before[p.ifname + p.hook] == p.prog_id) return false;
        return true;
      },
      10s))
      << "after the restart every hook must carry exactly one, new, weir filter";
  EXPECT_FALSE(pod1_reaches_pod3()) << "the policy must survive the restart";
  // The restarted agent prunes IP set members nobody needs any more, and only those: pod2's
  // address is still in the set pod3's policy allows.
  auto sets = l.run_weir({"bpf", "ipsets", "dump"});
  ASSERT_TRUE(sets.ok()) << sets.error().str();
  EXPECT_NE(sets->find(l.pod("pod2")->ip + "/32"), std::string::npos) << *sets;
  EXPECT_EQ(sets->find(l.pod("pod1")->ip + "/32"), std::string::npos) << *sets;

  // Cleanup: no filter, no clsact qdisc left on the pods' host veths.
  ASSERT_TRUE(l.run_weir({"bpf", "cleanup"}).ok());
  for (const auto& p : l.pods()) {
    auto q = lab::run_process({"tc", "-n", l.node_netns(), "qdisc", "show", "dev", p.host_if});
    ASSERT_TRUE(q.ok());
    EXPECT_EQ(q->out.find("clsact"), std::string::npos) << p.host_if << ": " << q->out;
  }
  auto a = l.attached_programs();
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a->empty());
  ASSERT_TRUE(l.down().ok());
}

}  // namespace
}  // namespace weir::e2e
