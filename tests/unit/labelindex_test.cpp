// calc/labelindex.h: incremental selector -> IP set membership and change reporting.
#include <chrono>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cpu_time.h"
#include "calc/labelindex.h"

namespace weir::calc {
namespace {

using model::Ipv4;
using Ips = std::vector<Ipv4>;

Ipv4 ip(const std::string& s) {
  auto r = Ipv4::parse(s);
  EXPECT_TRUE(r.has_value()) << s;
  return r.value_or(Ipv4{});
}

Ips ips(std::initializer_list<const char*> l) {
  Ips v;
  for (const char* s : l) v.push_back(ip(s));
  return v;
}

model::Selector sel(std::string_view text) {
  auto r = model::parse_selector(text);
  EXPECT_TRUE(r.ok()) << r.error().str();
  return r.ok() ? *r : model::Selector();
}

SetId add(LabelIndex& idx, std::string_view text) {
  auto r = idx.add_selector(sel(text));
  EXPECT_TRUE(r.ok()) << r.error().str();
  return r.ok() ? *r : 0;
}

SetId add_ns(LabelIndex& idx, std::string_view text, std::string_view ns_text) {
  auto r = idx.add_selector(sel(text), sel(ns_text));
  EXPECT_TRUE(r.ok()) << r.error().str();
  return r.ok() ? *r : 0;
}

SetChange change(SetId id, Ips added, Ips removed, bool created = false, bool deleted = false) {
  return SetChange{id, std::move(added), std::move(removed), created, deleted};
}

std::string dump(const std::vector<SetChange>& cs) {
  std::string s;
  for (const auto& c : cs) {
    s += model::format_set_id(c.id) + (c.created ? " created" : "") +
         (c.deleted ? " deleted" : "") + " +[";
    for (const auto& a : c.added) s += a.str() + " ";
    s += "] -[";
    for (const auto& r : c.removed) s += r.str() + " ";
    s += "]\n";
  }
  return s;
}

#define EXPECT_CHANGES(idx, ...)                                         \
  do {                                                                   \
    const std::vector<SetChange> got_ = (idx).take_changes();            \
    const std::vector<SetChange> want_ = {__VA_ARGS__};                  \
    EXPECT_EQ(got_, want_) << "got:\n" << dump(got_) << "want:\n" << dump(want_); \
  } while (0)

// ---------------------------------------------------------------- basics

TEST(LabelIndex, NewSelectorEvaluatesExistingEndpoints) {
  LabelIndex idx;
  idx.update_endpoint("default/web-1", {{"app", "web"}}, ips({"10.0.0.1"}));
  idx.update_endpoint("default/web-2", {{"app", "web"}}, ips({"10.0.0.2"}));
  idx.update_endpoint("default/db-1", {{"app", "db"}}, ips({"10.0.0.3"}));

  const SetId web = add(idx, "app == 'web'");
  EXPECT_EQ(web, sel("app == 'web'").id());
  EXPECT_EQ(idx.members(web), ips({"10.0.0.1", "10.0.0.2"}));
  EXPECT_CHANGES(idx, change(web, ips({"10.0.0.1", "10.0.0.2"}), {}, true));
  EXPECT_CHANGES(idx);  // nothing new
  EXPECT_EQ(idx.endpoint_count(), 3u);
  EXPECT_EQ(idx.set_count(), 1u);
  EXPECT_EQ(idx.set_ids(), std::vector<SetId>{web});
  ASSERT_TRUE(idx.spec(web).has_value());
  EXPECT_EQ(idx.spec(web)->str(), "app == \"web\"");
}

TEST(LabelIndex, EmptySetReportedOnceAsCreated) {
  LabelIndex idx;
  const SetId none = add(idx, "app == 'nothing'");
  EXPECT_TRUE(idx.has_set(none));
  EXPECT_TRUE(idx.members(none).empty());
  EXPECT_CHANGES(idx, change(none, {}, {}, true));
  EXPECT_CHANGES(idx);
}

TEST(LabelIndex, EndpointAddAndRemove) {
  LabelIndex idx;
  const SetId web = add(idx, "app == 'web'");
  EXPECT_CHANGES(idx, change(web, {}, {}, true));

  idx.update_endpoint("default/web-1", {{"app", "web"}}, ips({"10.0.0.1", "10.0.0.11"}));
  idx.update_endpoint("default/db-1", {{"app", "db"}}, ips({"10.0.0.3"}));
  EXPECT_CHANGES(idx, change(web, ips({"10.0.0.1", "10.0.0.11"}), {}));

  EXPECT_TRUE(idx.remove_endpoint("default/web-1"));
  EXPECT_FALSE(idx.remove_endpoint("default/web-1"));
  EXPECT_FALSE(idx.remove_endpoint("default/never"));
  EXPECT_CHANGES(idx, change(web, {}, ips({"10.0.0.1", "10.0.0.11"})));
  EXPECT_TRUE(idx.members(web).empty());

  // Removing a non-matching endpoint changes nothing.
  EXPECT_TRUE(idx.remove_endpoint("default/db-1"));
  EXPECT_CHANGES(idx);
  EXPECT_EQ(idx.endpoint_count(), 0u);
}

TEST(LabelIndex, AddThenRemoveBeforeTakeCancelsOut) {
  LabelIndex idx;
  const SetId web = add(idx, "app == 'web'");
  EXPECT_CHANGES(idx, change(web, {}, {}, true));
  idx.update_endpoint("e", {{"app", "web"}}, ips({"10.0.0.1"}));
  ASSERT_TRUE(idx.remove_endpoint("e"));
  EXPECT_CHANGES(idx);
}

TEST(LabelIndex, LabelChangeMovesIpBetweenSets) {
  LabelIndex idx;
  const SetId web = add(idx, "app == 'web'");
  const SetId db = add(idx, "app == 'db'");
  const SetId any = add(idx, "has(app)");
  const SetId other = add(idx, "tier == 'x'");
  idx.update_endpoint("pod", {{"app", "web"}}, ips({"10.0.0.1"}));
  idx.update_endpoint("bystander", {{"app", "web"}}, ips({"10.0.0.2"}));
  (void)idx.take_changes();

  const auto before = idx.stats();
  idx.update_endpoint("pod", {{"app", "db"}}, ips({"10.0.0.1"}));
  std::vector<SetChange> want = {change(web, {}, ips({"10.0.0.1"})),
                                 change(db, ips({"10.0.0.1"}), {})};
  std::sort(want.begin(), want.end(), [](auto& a, auto& b) { return a.id < b.id; });
  const auto got = idx.take_changes();
  EXPECT_EQ(got, want) << dump(got);  // has(app) still matches: not reported; tier: untouched
  // One endpoint against each of the 4 sets; one decrement and one increment.
  EXPECT_EQ(idx.stats().selector_evaluations - before.selector_evaluations, 4u);
  EXPECT_EQ(idx.stats().member_updates - before.member_updates, 2u);

  EXPECT_EQ(idx.members(web), ips({"10.0.0.2"}));
  EXPECT_EQ(idx.members(db), ips({"10.0.0.1"}));
  EXPECT_EQ(idx.members(any), ips({"10.0.0.1", "10.0.0.2"}));
  EXPECT_TRUE(idx.members(other).empty());
}

TEST(LabelIndex, SameLabelsAndIpsIsANoOp) {
  LabelIndex idx;
  (void)add(idx, "app == 'web'");
  idx.update_endpoint("pod", {{"app", "web"}}, ips({"10.0.0.1"}));
  (void)idx.take_changes();
  const auto before = idx.stats();
  idx.update_endpoint("pod", {{"app", "web"}}, ips({"10.0.0.1", "10.0.0.1"}));
  EXPECT_CHANGES(idx);
  EXPECT_EQ(idx.stats().selector_evaluations, before.selector_evaluations);
  EXPECT_EQ(idx.stats().member_updates, before.member_updates);
}

TEST(LabelIndex, IpChangeTouchesOnlyTheEndpointsSetsWithoutReevaluation) {
  LabelIndex idx;
  const SetId web = add(idx, "app == 'web'");
  const SetId prod = add(idx, "env == 'prod'");
  const SetId db = add(idx, "app == 'db'");
  idx.update_endpoint("pod", {{"app", "web"}, {"env", "prod"}}, ips({"10.0.0.1", "10.0.0.2"}));
  idx.update_endpoint("db", {{"app", "db"}}, ips({"10.0.0.9"}));
  (void)idx.take_changes();

  const auto before = idx.stats();
  idx.update_endpoint("pod", {{"app", "web"}, {"env", "prod"}}, ips({"10.0.0.2", "10.0.0.5"}));
  std::vector<SetChange> want = {change(web, ips({"10.0.0.5"}), ips({"10.0.0.1"})),
                                 change(prod, ips({"10.0.0.5"}), ips({"10.0.0.1"}))};
  std::sort(want.begin(), want.end(), [](auto& a, auto& b) { return a.id < b.id; });
  EXPECT_EQ(idx.take_changes(), want);
  EXPECT_EQ(idx.stats().selector_evaluations, before.selector_evaluations);
  EXPECT_EQ(idx.members(db), ips({"10.0.0.9"}));
}

TEST(LabelIndex, LabelAndIpChangeTogether) {
  LabelIndex idx;
  const SetId web = add(idx, "app == 'web'");
  const SetId all = add(idx, "all()");
  idx.update_endpoint("pod", {{"app", "web"}}, ips({"10.0.0.1"}));
  (void)idx.take_changes();
  idx.update_endpoint("pod", {{"app", "web"}, {"v", "2"}}, ips({"10.0.0.7"}));
  std::vector<SetChange> want = {change(web, ips({"10.0.0.7"}), ips({"10.0.0.1"})),
                                 change(all, ips({"10.0.0.7"}), ips({"10.0.0.1"}))};
  std::sort(want.begin(), want.end(), [](auto& a, auto& b) { return a.id < b.id; });
  EXPECT_EQ(idx.take_changes(), want);
}

// ---------------------------------------------------------------- sharing

TEST(LabelIndex, SharedIpStaysWhileAnyMatchingEndpointHasIt) {
  LabelIndex idx;
  const SetId web = add(idx, "app == 'web'");
  (void)idx.take_changes();
  idx.update_endpoint("a", {{"app", "web"}}, ips({"10.0.0.9"}));
  idx.update_endpoint("b", {{"app", "web"}}, ips({"10.0.0.9"}));
  EXPECT_CHANGES(idx, change(web, ips({"10.0.0.9"}), {}));

  // b stops matching: a still has the IP.
  idx.update_endpoint("b", {{"app", "db"}}, ips({"10.0.0.9"}));
  EXPECT_CHANGES(idx);
  EXPECT_EQ(idx.members(web), ips({"10.0.0.9"}));
  // a loses the IP by an IP change: now no matching endpoint has it.
  idx.update_endpoint("a", {{"app", "web"}}, ips({"10.0.0.10"}));
  EXPECT_CHANGES(idx, change(web, ips({"10.0.0.10"}), ips({"10.0.0.9"})));
  // b matches again with the shared IP; removing a keeps .9 and drops .10.
  idx.update_endpoint("b", {{"app", "web"}}, ips({"10.0.0.9", "10.0.0.10"}));
  EXPECT_CHANGES(idx, change(web, ips({"10.0.0.9"}), {}));
  ASSERT_TRUE(idx.remove_endpoint("a"));
  EXPECT_CHANGES(idx);
  ASSERT_TRUE(idx.remove_endpoint("b"));
  EXPECT_CHANGES(idx, change(web, {}, ips({"10.0.0.9", "10.0.0.10"})));
}

TEST(LabelIndex, SelectorsAreReferenceCounted) {
  LabelIndex idx;
  idx.update_endpoint("pod", {{"app", "web"}}, ips({"10.0.0.1"}));
  const SetId a = add(idx, "app == 'web'");
  const SetId b = add(idx, "app in {\"web\"}");  // same set, other spelling
  EXPECT_EQ(a, b);
  EXPECT_EQ(idx.refcount(a), 2u);
  EXPECT_EQ(idx.set_count(), 1u);
  EXPECT_CHANGES(idx, change(a, ips({"10.0.0.1"}), {}, true));

  ASSERT_TRUE(idx.release_selector(a).ok());
  EXPECT_EQ(idx.refcount(a), 1u);
  EXPECT_TRUE(idx.has_set(a));
  EXPECT_CHANGES(idx);

  ASSERT_TRUE(idx.release_selector(a).ok());
  EXPECT_FALSE(idx.has_set(a));
  EXPECT_EQ(idx.refcount(a), 0u);
  EXPECT_CHANGES(idx, change(a, {}, ips({"10.0.0.1"}), false, true));

  const Status again = idx.release_selector(a);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().msg, "release of IP set " + model::format_set_id(a) + ": no such set");

  // Endpoint updates after the release do not touch the dead set.
  idx.update_endpoint("pod", {{"app", "web"}}, ips({"10.0.0.2"}));
  EXPECT_CHANGES(idx);
}

TEST(LabelIndex, ReleasedBeforeFirstReportLeavesNoTrace) {
  LabelIndex idx;
  idx.update_endpoint("pod", {{"app", "web"}}, ips({"10.0.0.1"}));
  const SetId a = add(idx, "app == 'web'");
  ASSERT_TRUE(idx.release_selector(a).ok());
  EXPECT_CHANGES(idx);
}

TEST(LabelIndex, ReleasedAndReaddedBetweenReportsIsADelta) {
  LabelIndex idx;
  idx.update_endpoint("p1", {{"app", "web"}}, ips({"10.0.0.1"}));
  idx.update_endpoint("p2", {{"app", "web"}}, ips({"10.0.0.2"}));
  const SetId a = add(idx, "app == 'web'");
  (void)idx.take_changes();

  ASSERT_TRUE(idx.release_selector(a).ok());
  ASSERT_TRUE(idx.remove_endpoint("p2"));
  idx.update_endpoint("p3", {{"app", "web"}}, ips({"10.0.0.3"}));
  EXPECT_EQ(add(idx, "app == 'web'"), a);
  EXPECT_CHANGES(idx, change(a, ips({"10.0.0.3"}), ips({"10.0.0.2"})));

  // Released, re-added and released again: one deletion of what the dataplane had.
  ASSERT_TRUE(idx.release_selector(a).ok());
  EXPECT_EQ(add(idx, "app == 'web'"), a);
  idx.update_endpoint("p4", {{"app", "web"}}, ips({"10.0.0.4"}));
  ASSERT_TRUE(idx.release_selector(a).ok());
  EXPECT_CHANGES(idx, change(a, {}, ips({"10.0.0.1", "10.0.0.3"}), false, true));
}

// ---------------------------------------------------------------- namespaces

TEST(LabelIndex, NamespaceSelectors) {
  LabelIndex idx;
  idx.update_namespace("team-a", {{"team", "a"}});
  idx.update_namespace("team-b", {{"team", "b"}});
  idx.update_endpoint("team-a/web", {{"app", "web"}}, ips({"10.0.1.1"}), "team-a");
  idx.update_endpoint("team-b/web", {{"app", "web"}}, ips({"10.0.2.1"}), "team-b");
  idx.update_endpoint("host", {{"app", "web"}}, ips({"192.168.0.1"}));  // no namespace

  const SetId plain = add(idx, "app == 'web'");
  const SetId in_a = add_ns(idx, "app == 'web'", "team == 'a'");
  const SetId any_ns = add_ns(idx, "app == 'web'", "all()");
  // Ids: the pair hashes both canonical texts, NUL-separated.
  EXPECT_EQ(in_a, model::fnv1a64(std::string("app == \"web\"") + '\0' + "team == \"a\""));
  EXPECT_EQ(in_a, 0xdc4e3b32ea3214a0ULL);  // stable across versions (docs/selectors.md)
  EXPECT_NE(in_a, plain);
  EXPECT_NE(any_ns, plain);
  EXPECT_EQ(idx.spec(in_a)->str(), "app == \"web\" [namespace: team == \"a\"]");

  EXPECT_EQ(idx.members(plain), ips({"10.0.1.1", "10.0.2.1", "192.168.0.1"}));
  EXPECT_EQ(idx.members(in_a), ips({"10.0.1.1"}));
  // Endpoints without a namespace never match a set with a namespace selector.
  EXPECT_EQ(idx.members(any_ns), ips({"10.0.1.1", "10.0.2.1"}));
  (void)idx.take_changes();

  // Relabel team-b so that it matches: only in_a changes.
  idx.update_namespace("team-b", {{"team", "a"}});
  EXPECT_CHANGES(idx, change(in_a, ips({"10.0.2.1"}), {}));
  // Labels that do not change any verdict: nothing.
  idx.update_namespace("team-b", {{"team", "a"}, {"extra", "1"}});
  EXPECT_CHANGES(idx);
  // Forget team-a's labels: it no longer has team=a.
  EXPECT_TRUE(idx.remove_namespace("team-a"));
  EXPECT_FALSE(idx.remove_namespace("team-a"));
  EXPECT_CHANGES(idx, change(in_a, {}, ips({"10.0.1.1"})));

  // An endpoint moving to another namespace is re-evaluated.
  idx.update_endpoint("team-a/web", {{"app", "web"}}, ips({"10.0.1.1"}), "team-b");
  EXPECT_CHANGES(idx, change(in_a, ips({"10.0.1.1"}), {}));
  // Dropping the namespace altogether leaves only the plain set.
  idx.update_endpoint("team-a/web", {{"app", "web"}}, ips({"10.0.1.1"}), "");
  std::vector<SetChange> want = {change(in_a, {}, ips({"10.0.1.1"})),
                                 change(any_ns, {}, ips({"10.0.1.1"}))};
  std::sort(want.begin(), want.end(), [](auto& a, auto& b) { return a.id < b.id; });
  EXPECT_EQ(idx.take_changes(), want);
}

TEST(LabelIndex, NamespaceNameLabelIsImplicit) {
  LabelIndex idx;
  // Never updated: the namespace still has kubernetes.io/metadata.name.
  idx.update_endpoint("prod/api", {{"app", "api"}}, ips({"10.0.3.1"}), "prod");
  idx.update_endpoint("dev/api", {{"app", "api"}}, ips({"10.0.4.1"}), "dev");
  const SetId s = add_ns(idx, "app == 'api'", "kubernetes.io/metadata.name == 'prod'");
  EXPECT_EQ(idx.members(s), ips({"10.0.3.1"}));
  // It cannot be overridden.
  idx.update_namespace("dev", {{"kubernetes.io/metadata.name", "prod"}});
  EXPECT_EQ(idx.members(s), ips({"10.0.3.1"}));
  // A set added later only looks at matching namespaces.
  idx.update_namespace("dev", {{"stage", "dev"}});
  const auto before = idx.stats();
  const SetId d = add_ns(idx, "all()", "stage == 'dev'");
  EXPECT_EQ(idx.members(d), ips({"10.0.4.1"}));
  // 2 namespace tests + 1 endpoint test (prod's endpoint is skipped).
  EXPECT_EQ(idx.stats().selector_evaluations - before.selector_evaluations, 3u);
}

// ---------------------------------------------------------------- scale

TEST(LabelIndex, OneLabelChangeAmong5000EndpointsAnd500Selectors) {
  constexpr int kEndpoints = 5000;
  constexpr int kApps = 50;
  constexpr int kTiers = 10;
  LabelIndex idx;
  auto labels_of = [](int app, int tier) {
    return model::Labels{{"app", "app-" + std::to_string(app)},
                         {"tier", "tier-" + std::to_string(tier)},
                         {"app.kubernetes.io/part-of", "shop"}};
  };
  auto ip_of = [](int i) { return Ipv4{0x0a000000u + static_cast<uint32_t>(i)}; };
  // Endpoint i: app i % 50, tier (i / 50) % 10: each (app, tier) pair has 10 endpoints.
  for (int i = 0; i < kEndpoints; ++i) {
    idx.update_endpoint("ns/pod-" + std::to_string(i), labels_of(i % kApps, (i / kApps) % kTiers),
                        {ip_of(i)}, "ns");
  }
  // Selector j: app-(j % 50) in tiers {t, t+1} with t = j / 50: 500 distinct sets of 20 IPs.
  std::vector<SetId> ids;
  const auto t0 = test::thread_cpu_time();  // CPU time: see cpu_time.h
  for (int j = 0; j < 500; ++j) {
    const int a = j % kApps;
    const int t = j / kApps;
    ids.push_back(add(idx, "app == 'app-" + std::to_string(a) + "' && tier in {'tier-" +
                               std::to_string(t) + "', 'tier-" + std::to_string((t + 1) % kTiers) +
                               "'} && has(app.kubernetes.io/part-of)"));
  }
  const auto setup = test::thread_cpu_time() - t0;
  ASSERT_EQ(idx.set_count(), 500u);
  for (int j : {0, 137, 499}) EXPECT_EQ(idx.members(ids[j]).size(), 20u) << j;
  (void)idx.take_changes();

  // Endpoint 1234: app 34, tier 4 -> tier 7.
  const int e = 1234;
  const int app = e % kApps, old_tier = (e / kApps) % kTiers, new_tier = 7;
  ASSERT_EQ(old_tier, 4);
  std::vector<SetChange> want;
  for (int j = 0; j < 500; ++j) {
    if (j % kApps != app) continue;
    const int t = j / kApps;
    const bool had = old_tier == t || old_tier == (t + 1) % kTiers;
    const bool has = new_tier == t || new_tier == (t + 1) % kTiers;
    if (had && !has) want.push_back(change(ids[j], {}, {ip_of(e)}));
    if (has && !had) want.push_back(change(ids[j], {ip_of(e)}, {}));
  }
  std::sort(want.begin(), want.end(), [](auto& a, auto& b) { return a.id < b.id; });
  ASSERT_EQ(want.size(), 4u);  // leaves t=3,4; joins t=6,7

  const auto before = idx.stats();
  const auto t1 = test::thread_cpu_time();
  idx.update_endpoint("ns/pod-1234", labels_of(app, new_tier), {ip_of(e)}, "ns");
  auto got = idx.take_changes();
  const auto update = test::thread_cpu_time() - t1;

  EXPECT_EQ(got, want) << dump(got);
  EXPECT_EQ(idx.stats().selector_evaluations - before.selector_evaluations, 500u);
  EXPECT_EQ(idx.stats().member_updates - before.member_updates, 4u);
  // A generous bound (shared machine, possibly a sanitized build); typically ~0.1 ms. The
  // setup (2.5 million evaluations, ~0.5 s of CPU) is only recorded.
  EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(update).count(), 100);
  RecordProperty("setup_ms",
                 std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(setup).count()));
  RecordProperty("update_us",
                 std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(update).count()));
}

// ---------------------------------------------------------------- randomized consistency

// Random operations against an independent brute-force model; the changes, applied to a
// simulated ipsets map, must reproduce the members exactly and never write a duplicate or delete
// a missing entry.
TEST(LabelIndex, RandomOperationsMatchBruteForceAndDeltasReplay) {
  std::mt19937 rng(777);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  const char* const texts[] = {"all()",          "app == 'a'",          "app in {'a', 'b'}",
                               "app != 'a'",     "!has(app)",           "tier == 'x' && app == 'b'",
                               "has(tier)",      "app == 'c' || tier == 'y'"};
  const char* const ns_texts[] = {"all()", "team == 'red'", "kubernetes.io/metadata.name == 'n1'"};
  const char* const namespaces[] = {"", "n0", "n1", "n2"};

  struct Ep {
    model::Labels labels;
    std::vector<uint32_t> ips;
    std::string ns;
  };
  std::map<std::string, Ep> eps;
  std::map<std::string, model::Labels> ns_labels;  // explicit labels only
  std::map<SetId, std::pair<SetSpec, int>> live;  // id -> spec, refs
  std::map<SetId, std::set<uint32_t>> dataplane;
  LabelIndex idx;

  auto labels_of_ns = [&](const std::string& n) {
    model::Labels l;
    if (auto it = ns_labels.find(n); it != ns_labels.end()) l = it->second;
    l[kNamespaceNameLabel] = n;
    return l;
  };
  auto expected_members = [&](const SetSpec& spec) {
    std::set<uint32_t> m;
    for (const auto& [k, ep] : eps) {
      if (!spec.selector.matches(ep.labels)) continue;
      if (spec.ns_selector &&
          (ep.ns.empty() || !spec.ns_selector->matches(labels_of_ns(ep.ns)))) {
        continue;
      }
      m.insert(ep.ips.begin(), ep.ips.end());
    }
    return m;
  };
  auto replay = [&]() {
    for (const SetChange& c : idx.take_changes()) {
      if (c.created) {
        ASSERT_EQ(dataplane.count(c.id), 0u);
        dataplane[c.id];
      }
      ASSERT_EQ(dataplane.count(c.id), 1u) << model::format_set_id(c.id);
      auto& s = dataplane[c.id];
      for (const Ipv4& r : c.removed) ASSERT_EQ(s.erase(r.value), 1u) << r.str();
      for (const Ipv4& a : c.added) ASSERT_TRUE(s.insert(a.value).second) << a.str();
      if (c.deleted) {
        ASSERT_TRUE(s.empty());
        dataplane.erase(c.id);
      }
    }
  };

  for (int step = 0; step < 3000; ++step) {
    const int op = pick(10);
    if (op <= 4) {  // update an endpoint
      Ep ep;
      if (pick(4)) ep.labels["app"] = std::string(1, static_cast<char>('a' + pick(3)));
      if (pick(2)) ep.labels["tier"] = pick(2) ? "x" : "y";
      const int n = pick(3);
      for (int i = 0; i < n; ++i) ep.ips.push_back(0x0a000000u + static_cast<uint32_t>(pick(12)));
      ep.ns = namespaces[pick(4)];
      const std::string key = "ep" + std::to_string(pick(15));
      Ips v;
      for (uint32_t x : ep.ips) v.push_back(Ipv4{x});
      idx.update_endpoint(key, ep.labels, v, ep.ns);
      std::sort(ep.ips.begin(), ep.ips.end());
      eps[key] = ep;
    } else if (op == 5) {
      const std::string key = "ep" + std::to_string(pick(15));
      EXPECT_EQ(idx.remove_endpoint(key), eps.erase(key) == 1);
    } else if (op == 6) {
      const std::string n = namespaces[1 + pick(3)];
      if (pick(3)) {
        model::Labels l;
        if (pick(2)) l["team"] = pick(2) ? "red" : "blue";
        idx.update_namespace(n, l);
        ns_labels[n] = l;
      } else {
        EXPECT_EQ(idx.remove_namespace(n), ns_labels.erase(n) == 1);
      }
    } else if (op <= 8) {  // add a set
      SetSpec spec{sel(texts[pick(8)]), std::nullopt};
      if (pick(2)) spec.ns_selector = sel(ns_texts[pick(3)]);
      auto r = idx.add_set(spec);
      ASSERT_TRUE(r.ok());
      ASSERT_EQ(*r, spec.id());
      auto& entry = live[*r];
      entry.first = spec;
      ++entry.second;
    } else if (!live.empty()) {  // release a set
      auto it = std::next(live.begin(), pick(static_cast<int>(live.size())));
      ASSERT_TRUE(idx.release_selector(it->first).ok());
      if (--it->second.second == 0) live.erase(it);
    }
    if (pick(4) == 0) replay();

    // The index agrees with brute force after every step.
    ASSERT_EQ(idx.set_count(), live.size());
    for (const auto& [id, entry] : live) {
      const std::set<uint32_t> want = expected_members(entry.first);
      Ips w;
      for (uint32_t x : want) w.push_back(Ipv4{x});
      ASSERT_EQ(idx.members(id), w) << "step " << step << " set " << entry.first.str();
      ASSERT_EQ(idx.refcount(id), static_cast<uint32_t>(entry.second));
    }
  }
  replay();
  // After a final replay the simulated map holds exactly the live sets and their members.
  ASSERT_EQ(dataplane.size(), live.size());
  for (const auto& [id, entry] : live) {
    const std::set<uint32_t> want = expected_members(entry.first);
    EXPECT_EQ(dataplane[id], want) << entry.first.str();
  }
}

}  // namespace
}  // namespace weir::calc
