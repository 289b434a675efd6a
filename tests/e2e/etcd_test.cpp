// The agent on the etcd datastore, with real sockets: the lab runs an etcd member in its node
// netns and writes resources with `weir apply`'s code. A service applied to etcd is
// load-balanced; etcd killed mid-test leaves the dataplane as it is (connections keep working,
// the agent keeps running); etcd back, later changes are applied.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "e2e_util.h"
#include "lab/lab.h"
#include "lab/traffic.h"

namespace weir::e2e {
namespace {

using lab::Lab;

constexpr const char* kVip = "10.96.0.10";

// Names of the pods that answered `n` TCP requests to the VIP from pod1; errors counted apart.
struct Answers {
  std::map<std::string, int> names;
  int errors = 0;
};

Answers ask(Lab& l, int n) {
  auto r = l.in_pod("pod1", [&] {
    Answers a;
    for (int i = 0; i < n; ++i) {
      auto fd = lab::tcp_connect(kVip, 80);
      if (!fd) {
        a.errors++;
        continue;
      }
      auto name = lab::tcp_request(fd->get());
      if (name)
        a.names[*name]++;
      else
        a.errors++;
    }
    return a;
  });
  EXPECT_TRUE(r.ok()) << r.error().str();
  return r.ok() ? *r : Answers{};
}

bool serves_exactly(Lab& l, const std::set<std::string>& pods) {
  Answers a = ask(l, 12);
  std::set<std::string> got;
  for (const auto& [p, n] : a.names) got.insert(p);
  return a.errors == 0 && got == pods;
}

TEST(EtcdDatastoreE2E, ServicesFromEtcdSurviveAnEtcdOutageAndLaterChangesApply) {
  require_root();
  lab::LabSpec spec = lab_spec(4);
  spec.datastore = "etcd";
  auto up = Lab::up(spec);
  ASSERT_TRUE(up.ok()) << up.error().str();
  Lab& l = *up;
  EXPECT_EQ(l.datastore_spec(), "etcd:http://127.0.0.1:2379");
  for (const char* p : {"pod2", "pod3", "pod4"}) ASSERT_TRUE(l.start_server(p, {8080}, {}).ok());
  ASSERT_TRUE(write_web_service(l, kVip, {"pod2", "pod3"}).ok());
  ASSERT_TRUE(wait_until(
      [&] {
        return serves_exactly(l, {"pod2", "pod3"});
      },
      20s))
      << tail(l.agent_log(), 40);
  // What the agent read came from etcd: `weir get` there shows it.
  auto got = l.run_weir({"get", "svc", "--datastore", l.datastore_spec()});
  ASSERT_TRUE(got.ok()) << got.error().str();
  EXPECT_NE(got->find("web"), std::string::npos) << *got;

  // etcd dies. A connection opened before keeps working, new ones too; the agent keeps running.
  auto before = l.in_pod("pod1", [&] { return lab::tcp_connect(kVip, 80); });
  ASSERT_TRUE(before.ok()) << before.error().str();
  ASSERT_TRUE(l.stop_etcd().ok());
  ASSERT_TRUE(
      wait_until([&] { return l.agent_log().find("watch broke") != std::string::npos; }, 10s))
      << tail(l.agent_log(), 20);
  auto held = l.in_pod("pod1", [&] { return lab::tcp_request(before->get()); });
  EXPECT_TRUE(held.ok()) << held.error().str();
  EXPECT_TRUE(wait_until([&] { return serves_exactly(l, {"pod2", "pod3"}); }, 5s));
  EXPECT_TRUE(l.agent_running());

  // etcd is back: a change made now reaches the dataplane.
  ASSERT_TRUE(l.start_etcd().ok());
  ASSERT_TRUE(write_web_service(l, kVip, {"pod4"}).ok());
  ASSERT_TRUE(wait_until([&] { return serves_exactly(l, {"pod4"}); }, 30s))
      << tail(l.agent_log(), 40);
  EXPECT_NE(l.agent_log().find("watching /weir/ again"), std::string::npos);
  // Deleting through the lab deletes from etcd: the VIP has no backend, so it is refused.
  ASSERT_TRUE(l.remove_resource("svc-web.yaml").ok());
  ASSERT_TRUE(wait_until([&] { return ask(l, 3).errors == 3; }, 20s)) << tail(l.agent_log(), 40);
  auto gone = l.run_weir({"get", "svc", "--datastore", l.datastore_spec()});
  ASSERT_TRUE(gone.ok());
  EXPECT_EQ(gone->find("web"), std::string::npos) << *gone;
  ASSERT_TRUE(l.down().ok());
}

}  // namespace
}  // namespace weir::e2e
