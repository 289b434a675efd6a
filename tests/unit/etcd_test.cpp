// The etcd datastore against a real etcd (Debian's etcd-server), started by each test on
// loopback ports with its data in a temporary directory: the client (ranges, transactions,
// paging at one revision, failover), the key layout, validation naming keys, and the watch
// state machine (revision handling, reconnect, compaction, member failover).
#include <gtest/gtest.h>
#include <poll.h>

#include <chrono>
#include <thread>

#include "datastore/etcd_client.h"
#include "datastore/etcd_datastore.h"
#include "datastore/http.h"
#include "lab/etcd_server.h"

namespace weir::testing {
namespace {

using datastore::EtcdDatastore;
namespace http = datastore::http;
using namespace datastore::etcd;
using std::chrono::milliseconds;

std::unique_ptr<lab::EtcdCluster> start_etcd(int members = 1) {
  lab::EtcdClusterOptions o;
  o.members = members;
  o.tag = "unit";
  auto c = lab::EtcdCluster::start(o);
  if (!c) ADD_FAILURE() << c.error().str();
  return c ? std::move(*c) : nullptr;
}

std::string service(const std::string& name, const std::string& ip, int port = 80,
                    const std::string& ns = "default") {
  return fmt::format(
      R"({{"apiVersion":"v1","kind":"Service","metadata":{{"name":"{}","namespace":"{}"}},)"
      R"("spec":{{"clusterIP":"{}","ports":[{{"port":{},"protocol":"TCP"}}]}}}})",
      name, ns, ip, port);
}

Op put(std::string k, std::string v) { return Op{Op::Type::Put, std::move(k), std::move(v)}; }
Op del(std::string k) { return Op{Op::Type::Delete, std::move(k), ""}; }

// Waits until the watcher's fd is readable and drain() reports a change, then loads; repeats
// until `pred` holds for an accepted load or `timeout` passes.
template <typename Pred>
bool wait_load(EtcdDatastore& ds, datastore::Watcher& w, Pred pred,
               milliseconds timeout = milliseconds(15000)) {
  auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    pollfd p{w.fd(), POLLIN, 0};
    ::poll(&p, 1, 200);
    (void)w.drain();
    auto l = ds.load_incremental();
    if (l.ok() && pred(*l.snapshot)) return true;
  }
  return false;
}

bool has_service(const model::Snapshot& s, const std::string& name) {
  return s.find_service("default", name) != nullptr;
}

TEST(Http, ParseUrl) {
  auto ok = http::parse_url("http://127.0.0.1:2379/");
  ASSERT_TRUE(ok.ok()) << ok.error().str();
  EXPECT_EQ(ok->host, "127.0.0.1");
  EXPECT_EQ(ok->port, 2379);
  EXPECT_EQ(ok->url(), "http://127.0.0.1:2379");
  for (auto [url, why] :
       std::vector<std::pair<std::string, std::string>>{{"https://a:1", "TLS"},
                                                        {"a:1", "not an http:// URL"},
                                                        {"http://a", "no port"},
                                                        {"http://a:0", "bad port"},
                                                        {"http://a:65536", "bad port"},
                                                        {"http://a:12x", "bad port"},
                                                        {"http://:1", "no host"},
                                                        {"http://a:1/v3", "path"}}) {
    auto r = http::parse_url(url);
    ASSERT_FALSE(r.ok()) << url;
    EXPECT_NE(r.error().msg.find(why), std::string::npos) << url << ": " << r.error().msg;
    EXPECT_NE(r.error().msg.find(url), std::string::npos) << r.error().msg;
  }
}

TEST(Etcd, Base64AndPrefixEnd) {
  for (const std::string& s :
       std::vector<std::string>{"", "a", "ab", "abc", "abcd", std::string("\0\xff\x80", 3)}) {
    auto d = base64_decode(base64_encode(s));
    ASSERT_TRUE(d) << s;
    EXPECT_EQ(*d, s);
  }
  EXPECT_EQ(base64_encode("/weir/a"), "L3dlaXIvYQ==");
  EXPECT_FALSE(base64_decode("abc"));
  EXPECT_FALSE(base64_decode("a=bc"));
  EXPECT_FALSE(base64_decode("ab!c"));
  EXPECT_EQ(prefix_end("/weir/"), "/weir0");
  EXPECT_EQ(prefix_end(std::string("a\xff", 2)), "b");
  EXPECT_EQ(prefix_end(""), std::string(1, '\0'));
}

TEST(Etcd, KeyLayout) {
  using datastore::parse_resource_key;
  using datastore::resource_key;
  const auto* svc = datastore::find_kind("services");
  ASSERT_NE(svc, nullptr);
  EXPECT_EQ(svc, datastore::find_kind("Service"));
  EXPECT_EQ(svc, datastore::find_kind("svc"));
  EXPECT_EQ(datastore::find_kind("netpol"), datastore::find_kind("NetworkPolicy"));
  EXPECT_EQ(resource_key("/weir/", *svc, "default", "web"), "/weir/services/default/web");
  const auto* node = datastore::find_kind("node");
  ASSERT_NE(node, nullptr);
  EXPECT_EQ(node, datastore::find_kind("NODES"));
  EXPECT_EQ(datastore::find_kind("widget"), nullptr);
  EXPECT_EQ(resource_key("/weir/", *node, "", "n1"), "/weir/nodes/n1");
  auto p = parse_resource_key("/weir/", "/weir/services/kube-system/dns");
  ASSERT_TRUE(p.ok()) << p.error().str();
  EXPECT_EQ(p->kind, svc);
  EXPECT_EQ(p->ns, "kube-system");
  EXPECT_EQ(p->name, "dns");
  for (std::string bad : {"/other/services/a/b", "/weir/services/a", "/weir/services/a/b/c",
                          "/weir/widgets/a", "/weir/nodes/a/b", "/weir/services//b"}) {
    auto r = parse_resource_key("/weir/", bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) EXPECT_NE(r.error().msg.find("expected /weir/<kind>/"), std::string::npos);
  }
  EXPECT_FALSE(datastore::check_prefix("weir/").ok());
  EXPECT_FALSE(datastore::check_prefix("/weir").ok());
  EXPECT_FALSE(datastore::check_prefix("/we ir/").ok());
  EXPECT_TRUE(datastore::check_prefix("/weir-test/").ok());
}

TEST(EtcdClient, TxnRangePagingAtOneRevision) {
  auto etcd = start_etcd();
  ASSERT_TRUE(etcd);
  auto c = Client::create(etcd->endpoints());
  ASSERT_TRUE(c.ok()) << c.error().str();
  std::vector<Op> ops;
  for (int i = 0; i < 7; ++i) ops.push_back(put(fmt::format("/p/k{}", i), fmt::format("v{}", i)));
  ops.push_back(put("/q/outside", "x"));
  auto rev = c->txn(ops);
  ASSERT_TRUE(rev.ok()) << rev.error().str();
  // Changes after `rev` are not in a read at `rev`, however it is paged.
  ASSERT_TRUE(c->txn({del("/p/k0"), put("/p/k9", "late")}).ok());
  auto r = c->get_prefix("/p/", *rev, 2);
  ASSERT_TRUE(r.ok()) << r.error().str();
  ASSERT_EQ(r->kvs.size(), 7u);
  EXPECT_EQ(r->revision, *rev);
  for (int i = 0; i < 7; ++i) {
    EXPECT_EQ(r->kvs[size_t(i)].key, fmt::format("/p/k{}", i));
    EXPECT_EQ(r->kvs[size_t(i)].value, fmt::format("v{}", i));
  }
  auto now = c->get_prefix("/p/", 0, 3);
  ASSERT_TRUE(now.ok());
  ASSERT_EQ(now->kvs.size(), 7u);
  EXPECT_EQ(now->kvs.front().key, "/p/k1");
  EXPECT_EQ(now->kvs.back().value, "late");
  EXPECT_GT(now->revision, *rev);
  // A read at a compacted revision says so.
  ASSERT_TRUE(c->compact(now->revision).ok());
  auto old = c->get_prefix("/p/", *rev);
  ASSERT_FALSE(old.ok());
  EXPECT_EQ(old.error().err, kErrCompacted) << old.error().str();
  EXPECT_NE(old.error().msg.find("compacted"), std::string::npos);
}

TEST(EtcdClient, NothingListeningNamesEveryEndpoint) {
  Options o;
  o.dial_timeout = milliseconds(300);
  auto c = Client::create("http://127.0.0.1:1,http://127.0.0.1:2", o);
  ASSERT_TRUE(c.ok());
  auto r = c->get_prefix("/weir/");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().msg.find("http://127.0.0.1:1"), std::string::npos) << r.error().msg;
  EXPECT_NE(r.error().msg.find("http://127.0.0.1:2"), std::string::npos) << r.error().msg;
  EXPECT_NE(r.error().msg.find("Connection refused"), std::string::npos) << r.error().msg;
}

TEST(EtcdDatastore, LoadsKeysAndNamesTheKeyOfABadValue) {
  auto etcd = start_etcd();
  ASSERT_TRUE(etcd);
  auto ds = EtcdDatastore::open(etcd->endpoints());
  ASSERT_TRUE(ds.ok()) << ds.error().str();
  auto& c = (*ds)->client();
  ASSERT_TRUE(c.txn({put("/weir/services/default/web", service("web", "10.96.0.10")),
                     put("/weir/services/default/api", service("api", "10.96.0.11")),
                     put("/other/services/default/x", "not ours")})
                  .ok());
  auto l = (*ds)->load_detailed();
  ASSERT_TRUE(l.ok()) << model::to_error(l.errors).str();
  ASSERT_EQ(l.snapshot->services.size(), 2u);
  EXPECT_EQ(l.snapshot->services[0].meta.name, "api");  // key order
  EXPECT_EQ(l.snapshot->services[0].source.file, "/weir/services/default/api");

  // A bad value, a value under the wrong key, and a key outside the layout: every error names
  // its key, and the load is rejected as a whole.
  ASSERT_TRUE(c.txn({put("/weir/services/default/bad", service("bad", "10.96.0.12", 70000)),
                     put("/weir/services/default/other", service("web2", "10.96.0.13")),
                     put("/weir/widgets/x", "{}")})
                  .ok());
  l = (*ds)->load_detailed();
  ASSERT_FALSE(l.ok());
  std::string all = model::to_error(l.errors).str();
  EXPECT_NE(all.find("/weir/services/default/bad: Service default/bad: spec.ports[0].port: 70000"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("/weir/services/default/other: Service default/web2: the key names Service "
                     "default/other, the value holds Service default/web2"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("/weir/widgets/x: unknown kind \"widgets\""), std::string::npos) << all;
  EXPECT_EQ(l.errors.size(), 3u) << all;
}

TEST(EtcdDatastore, WatchDeliversChangesIncrementallyAndSurvivesARestart) {
  auto etcd = start_etcd();
  ASSERT_TRUE(etcd);
  auto ds = EtcdDatastore::open(etcd->endpoints());
  ASSERT_TRUE(ds.ok());
  auto& c = (*ds)->client();
  ASSERT_TRUE(c.txn({put("/weir/services/default/web", service("web", "10.96.0.10"))}).ok());
  auto w = (*ds)->watch();
  ASSERT_TRUE(w.ok()) << w.error().str();
  auto first = (*ds)->load_incremental();
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(first.changes.full);
  ASSERT_EQ(first.snapshot->services.size(), 1u);

  // A watched change is parsed alone (the other keys come from the cache untouched).
  for (int i = 0; i < 50; ++i)
    ASSERT_TRUE(c.txn({put(fmt::format("/weir/services/default/bulk{}", i),
                           service(fmt::format("bulk{}", i), fmt::format("10.96.1.{}", i + 1)))})
                    .ok());
  ASSERT_TRUE(wait_load(**ds, **w, [](const auto& s) { return has_service(s, "bulk49"); }));
  const uint64_t parsed_before = (*ds)->parsed();
  ASSERT_TRUE(c.txn({put("/weir/services/default/api", service("api", "10.96.0.11"))}).ok());
  ASSERT_TRUE(wait_load(**ds, **w, [](const auto& s) { return has_service(s, "api"); }));
  EXPECT_EQ((*ds)->parsed(), parsed_before + 1);
  auto l = (*ds)->load_incremental();  // nothing new: same content, nothing changed
  ASSERT_TRUE(l.ok());
  EXPECT_FALSE(l.changes.full);
  EXPECT_TRUE(l.changes.services.empty());

  // A service-only change is incremental and names the service.
  ASSERT_TRUE(c.txn({del("/weir/services/default/web")}).ok());
  ASSERT_TRUE(wait_load(**ds, **w, [](const auto& s) { return !has_service(s, "web"); }));
  EXPECT_EQ((*ds)->full_loads(), 1u);

  // etcd goes away: loads keep the content last read (the dataplane stays as it is).
  ASSERT_TRUE(etcd->kill_member(0).ok());
  l = (*ds)->load_incremental();
  ASSERT_TRUE(l.ok());
  EXPECT_TRUE(has_service(*l.snapshot, "api"));
  // It comes back on its data; the watch resumes from the revision it saw and misses nothing.
  ASSERT_TRUE(etcd->restart_member(0).ok());
  ASSERT_TRUE(lab::wait_etcd_ready(etcd->endpoints(), milliseconds(20000)).ok());
  ASSERT_TRUE(c.txn({put("/weir/services/default/db", service("db", "10.96.0.14"))}).ok());
  ASSERT_TRUE(wait_load(**ds, **w, [](const auto& s) {
    return has_service(s, "db") && has_service(s, "api") && !has_service(s, "web");
  }));
  // What the watched, incremental loads built is what a fresh full read builds.
  auto now = (*ds)->load_incremental();
  ASSERT_TRUE(now.ok());
  auto fresh = EtcdDatastore::open(etcd->endpoints());
  ASSERT_TRUE(fresh.ok());
  auto full = (*fresh)->load_detailed();
  ASSERT_TRUE(full.ok());
  auto names = [](const model::Snapshot& s) {
    std::vector<std::string> v;
    for (const auto& svc : s.services) v.push_back(svc.meta.name + "=" + svc.cluster_ip->str());
    std::sort(v.begin(), v.end());
    return v;
  };
  EXPECT_EQ(names(*now.snapshot), names(*full.snapshot));
  EXPECT_EQ(names(*full.snapshot).size(), 52u);
}

TEST(EtcdDatastore, CompactedRevisionIsReadAgainAndMemberFailover) {
  auto etcd = start_etcd(3);
  ASSERT_TRUE(etcd);
  // The compaction case: this datastore talks to member 0 only.
  auto only0 = EtcdDatastore::open(etcd->endpoint(0));
  ASSERT_TRUE(only0.ok());
  // The failover case: this one knows every member.
  auto all = EtcdDatastore::open(etcd->endpoints());
  ASSERT_TRUE(all.ok());
  auto c = Client::create(etcd->endpoint(1) + "," + etcd->endpoint(2));
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(c->txn({put("/weir/services/default/web", service("web", "10.96.0.10"))}).ok());
  auto w0 = (*only0)->watch();
  ASSERT_TRUE(w0.ok());
  auto wa = (*all)->watch();
  ASSERT_TRUE(wa.ok());
  ASSERT_TRUE((*only0)->load_incremental().ok());
  ASSERT_TRUE((*all)->load_incremental().ok());

  // Member 0 dies (both watches were on it). Meanwhile, changes are made and the history
  // compacted past the revision member 0's watcher saw.
  ASSERT_TRUE(etcd->kill_member(0).ok());
  ASSERT_TRUE(c->txn({put("/weir/services/default/api", service("api", "10.96.0.11"))}).ok());
  ASSERT_TRUE(c->txn({del("/weir/services/default/web")}).ok());
  // The datastore with every endpoint fails over and sees both changes.
  ASSERT_TRUE(wait_load(
      **all, **wa, [](const auto& s) { return has_service(s, "api") && !has_service(s, "web"); }));
  auto rev = c->revision();
  ASSERT_TRUE(rev.ok());
  ASSERT_TRUE(c->compact(*rev).ok());
  ASSERT_TRUE(c->txn({put("/weir/services/default/db", service("db", "10.96.0.14"))}).ok());
  // Member 0 comes back: its watcher's revision is compacted, so it reads everything again and
  // ends with the same content as the other, nothing lost.
  ASSERT_TRUE(etcd->restart_member(0).ok());
  ASSERT_TRUE(wait_load(
      **only0, **w0,
      [](const auto& s) {
        return has_service(s, "api") && has_service(s, "db") && !has_service(s, "web");
      },
      milliseconds(30000)));
  ASSERT_TRUE(wait_load(**all, **wa, [](const auto& s) { return has_service(s, "db"); }));
}

}  // namespace
}  // namespace weir::testing
