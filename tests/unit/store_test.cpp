// `weir apply/get/delete` (datastore/store.h) against a directory and a real etcd: client-side
// validation before any write, "no new error" for the datastore as a whole, batching into
// bounded transactions, and the YAML <-> JSON conversion they store and print through.
#include "datastore/store.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "datastore/etcd_client.h"
#include "datastore_testing.h"
#include "lab/etcd_server.h"
#include "model/yaml_json.h"

namespace weir::testing {
namespace {

namespace fs = std::filesystem;
using datastore::ResourceStore;

std::string svc(const std::string& name, const std::string& ip, int port = 80) {
  return fmt::format(
      "apiVersion: v1\nkind: Service\nmetadata: {{name: {}}}\nspec:\n  clusterIP: {}\n"
      "  ports: [{{port: {}, name: http}}]\n",
      name, ip, port);
}

std::string slice(const std::string& svc_name, const std::string& ip) {
  return fmt::format(
      "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {0}-1\n"
      "  labels: {{kubernetes.io/service-name: {0}}}\naddressType: IPv4\n"
      "endpoints: [{{addresses: [\"{1}\"]}}]\nports: [{{name: http, port: 8080}}]\n",
      svc_name, ip);
}

std::vector<model::SourceText> input(const std::string& text) { return {{"in.yaml", text}}; }

std::string lines(const Result<std::vector<std::string>>& r) {
  if (!r) return "error: " + r.error().str();
  std::string out;
  for (const auto& l : *r) out += l + "\n";
  return out;
}

TEST(YamlJson, ScalarsKeepTheirTypeBothWays) {
  YAML::Node n = YAML::Load(
      "a: 80\nb: \"80\"\nc: true\nd: 'true'\ne: null\nf: 1.5\ng: x\nh: [1, \"2\"]\ni: 0x10\n"
      "j: ''\nk: 99999999999999999999\n");
  auto j = model::yaml_to_json(n);
  EXPECT_EQ(j["a"], 80);
  EXPECT_EQ(j["b"], "80");
  EXPECT_EQ(j["c"], true);
  EXPECT_EQ(j["d"], "true");
  EXPECT_TRUE(j["e"].is_null());
  EXPECT_EQ(j["f"], 1.5);
  EXPECT_EQ(j["g"], "x");
  EXPECT_EQ(j["h"], nlohmann::json::array({1, "2"}));
  EXPECT_EQ(j["i"], 16);
  EXPECT_EQ(j["j"], "");
  EXPECT_EQ(j["k"], "99999999999999999999");  // beyond int64: kept as written
  // Back to YAML and in again: the same JSON.
  auto again = model::yaml_to_json(YAML::Load(model::json_to_yaml(j)));
  EXPECT_EQ(again, j) << model::json_to_yaml(j);
}

TEST(ResourceStoreDir, ApplyGetDeleteAndValidateFirst) {
  TempDir d;
  auto store = datastore::open_store("dir:" + d.path().string());
  ASSERT_TRUE(store.ok()) << store.error().str();
  ResourceStore& s = **store;
  EXPECT_EQ(lines(apply_resources(
                s, input(svc("web", "10.96.0.10") + "---\n" + slice("web", "10.65.0.2")))),
            "service default/web created\nendpointslice default/web-1 created\n");
  EXPECT_TRUE(fs::exists(d.path() / "services_default_web.yaml"));
  EXPECT_TRUE(fs::exists(d.path() / "endpointslices_default_web-1.yaml"));
  // The files it wrote load as the agent loads them.
  auto l = datastore::open_datastore("dir:" + d.path().string());
  ASSERT_TRUE(l.ok());
  auto snap = (*l)->load();
  ASSERT_TRUE(snap.ok()) << snap.error().str();
  EXPECT_EQ(snap->services.size(), 1u);
  EXPECT_EQ(snap->endpoint_slices.size(), 1u);

  EXPECT_EQ(lines(apply_resources(s, input(svc("web", "10.96.0.10")))),
            "service default/web unchanged\n");
  EXPECT_EQ(lines(apply_resources(s, input(svc("web", "10.96.0.10", 81)))),
            "service default/web configured\n");
  auto got = get_resources(s, *datastore::find_kind("svc"), "", "web");
  ASSERT_TRUE(got.ok()) << got.error().str();
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].body["spec"]["ports"][0]["port"], 81);
  EXPECT_FALSE(get_resources(s, *datastore::find_kind("svc"), "", "nope").ok());

  // A resource in a file of several (written by hand) is not rewritten behind the operator.
  d.write("hand.yaml", svc("a", "10.96.0.20") + "---\n" + svc("b", "10.96.0.21"));
  auto r = apply_resources(s, input(svc("a", "10.96.0.22")));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().msg.find("Service default/a is defined in hand.yaml with 1 other resource"),
            std::string::npos)
      << r.error().msg;
  r = delete_resources(s, {{datastore::find_kind("svc"), "default", "b"}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().msg.find("remove it from that file by hand"), std::string::npos);

  // Delete: a Service under its EndpointSlice is refused (the datastore would not load), both
  // together are not.
  r = delete_resources(s, {{datastore::find_kind("services"), "", "web"}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().msg.find("nothing deleted"), std::string::npos);
  EXPECT_NE(r.error().msg.find("Service default/web does not exist"), std::string::npos)
      << r.error().msg;
  EXPECT_TRUE(fs::exists(d.path() / "services_default_web.yaml"));
  EXPECT_EQ(lines(delete_resources(s, {{datastore::find_kind("services"), "", "web"},
                                       {datastore::find_kind("endpointslices"), "", "web-1"}})),
            "endpointslice default/web-1 deleted\nservice default/web deleted\n");
  EXPECT_FALSE(fs::exists(d.path() / "services_default_web.yaml"));
  r = delete_resources(s, {{datastore::find_kind("services"), "", "web"}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().msg.find("Service default/web not found"), std::string::npos);
}

TEST(ResourceStoreDir, NothingIsWrittenWhenAnythingIsWrong) {
  TempDir d;
  auto store = datastore::open_store("dir:" + d.path().string());
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE(apply_resources(**store, input(svc("web", "10.96.0.10"))).ok());
  // Two invalid resources and a valid one: both errors reported, nothing written.
  auto r = apply_resources(
      **store, input(svc("ok", "10.96.0.11") + "---\n" + svc("bad", "10.96.0.12", 70000) + "---\n" +
                     svc("bad2", "300.1.1.1")));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().msg.find("nothing applied: the input is not valid (2 problems)"),
            std::string::npos)
      << r.error().msg;
  EXPECT_NE(r.error().msg.find("70000"), std::string::npos);
  EXPECT_NE(r.error().msg.find("300.1.1.1"), std::string::npos);
  EXPECT_FALSE(fs::exists(d.path() / "services_default_ok.yaml"));
  // Valid alone, but not with what the datastore holds: the clusterIP:port is taken.
  r = apply_resources(**store,
                      input(svc("ok", "10.96.0.11") + "---\n" + svc("clash", "10.96.0.10")));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().msg.find("would not validate"), std::string::npos) << r.error().msg;
  EXPECT_NE(r.error().msg.find("10.96.0.10"), std::string::npos) << r.error().msg;
  EXPECT_FALSE(fs::exists(d.path() / "services_default_ok.yaml"));
  // The same resource twice in the input.
  r = apply_resources(**store, input(svc("x", "10.96.0.13") + "---\n" + svc("x", "10.96.0.14")));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().msg.find("Service default/x is also in in.yaml"), std::string::npos);
}

TEST(ResourceStoreEtcd, BatchesIntoBoundedTransactionsAndRoundTrips) {
  lab::EtcdClusterOptions o;
  o.tag = "store";
  auto etcd = lab::EtcdCluster::start(o);
  ASSERT_TRUE(etcd.ok()) << etcd.error().str();
  auto store = datastore::open_store("etcd:" + (*etcd)->endpoints());
  ASSERT_TRUE(store.ok()) << store.error().str();
  auto c = datastore::etcd::Client::create((*etcd)->endpoints());
  ASSERT_TRUE(c.ok());
  auto rev0 = c->revision();
  ASSERT_TRUE(rev0.ok());
  // 150 services and their slices: 300 keys, in ceil(300 / 128) = 3 transactions.
  std::string text;
  for (int i = 0; i < 150; ++i)
    text += (i ? "---\n" : "") + svc(fmt::format("s{}", i), fmt::format("10.96.1.{}", i + 1)) +
            "---\n" + slice(fmt::format("s{}", i), fmt::format("10.65.0.{}", i + 2));
  auto r = apply_resources(**store, input(text));
  ASSERT_TRUE(r.ok()) << r.error().str();
  EXPECT_EQ(r->size(), 300u);
  auto rev1 = c->revision();
  ASSERT_TRUE(rev1.ok());
  EXPECT_EQ(*rev1 - *rev0, 3);
  // Services before slices: the first transaction holds the 128 first services only.
  auto at = c->get_prefix("/weir/", *rev0 + 1);
  ASSERT_TRUE(at.ok());
  EXPECT_EQ(at->kvs.size(), 128u);
  for (const auto& kv : at->kvs) EXPECT_EQ(kv.key.rfind("/weir/services/", 0), 0u) << kv.key;
  // What the agent's datastore reads is what was applied.
  auto ds = datastore::open_datastore("etcd:" + (*etcd)->endpoints());
  ASSERT_TRUE(ds.ok());
  auto snap = (*ds)->load();
  ASSERT_TRUE(snap.ok()) << snap.error().str();
  EXPECT_EQ(snap->services.size(), 150u);
  EXPECT_EQ(snap->endpoint_slices.size(), 150u);
  auto one = get_resources(**store, *datastore::find_kind("endpointslices"), "default", "s7-1");
  ASSERT_TRUE(one.ok());
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].source, "/weir/endpointslices/default/s7-1");
  EXPECT_EQ((*one)[0].body["endpoints"][0]["addresses"][0], "10.65.0.9");
  // A value written by hand under the wrong key is an error the next apply does not add to.
  ASSERT_TRUE(c->txn({{datastore::etcd::Op::Type::Put, "/weir/services/default/wrong",
                       text.substr(0, 0) + "{}"}})
                  .ok());
  r = apply_resources(**store, input(svc("new", "10.96.2.1")));
  EXPECT_TRUE(r.ok()) << r.error().str();  // the existing error is not the apply's
  EXPECT_EQ(lines(delete_resources(**store, {{datastore::find_kind("svc"), "", "new"}})),
            "service default/new deleted\n");
}

}  // namespace
}  // namespace weir::testing
