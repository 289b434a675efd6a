// Pure formatting of `weir bpf ...` output (src/cli/format.h). No root needed.
// Expected texts come from the Calico documentation excerpt in /work/shared/seeds/000_*.txt
// (copied below where used); that excerpt had its runs of whitespace collapsed, so tables are
// compared after collapsing whitespace, and exact padding is checked separately.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <sstream>

#include "cli/format.h"

namespace weir::cli {
namespace {

uint32_t ip(const char* s) {
  struct in_addr a {};
  EXPECT_EQ(inet_pton(AF_INET, s, &a), 1) << s;
  return a.s_addr;
}

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  std::string l;
  while (std::getline(in, l)) out.push_back(l);
  return out;
}

std::string collapse_ws(const std::string& s) {
  std::string out;
  bool space = false;
  for (char c : s) {
    if (c == ' ' || c == '\t') {
      space = true;
      continue;
    }
    if (space && !out.empty()) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

// ------------------------------------------------------------------ go_duration

TEST(GoDuration, MatchesGoFormatting) {
  EXPECT_EQ(go_duration(0), "0s");
  EXPECT_EQ(go_duration(1), "1ns");
  EXPECT_EQ(go_duration(999), "999ns");
  EXPECT_EQ(go_duration(1500), "1.5\xc2\xb5s");
  EXPECT_EQ(go_duration(1000), "1\xc2\xb5s");
  EXPECT_EQ(go_duration(150'000'000), "150ms");
  EXPECT_EQ(go_duration(1'234'567), "1.234567ms");
  EXPECT_EQ(go_duration(999'999'999), "999.999999ms");
  EXPECT_EQ(go_duration(1'000'000'000), "1s");
  // The seed's values.
  EXPECT_EQ(go_duration(4'486'606'371), "4.486606371s");
  EXPECT_EQ(go_duration(26'442'759'238), "26.442759238s");
  EXPECT_EQ(go_duration(75'987'585'857), "1m15.987585857s");
  EXPECT_EQ(go_duration(60'816'678'617), "1m0.816678617s");
  EXPECT_EQ(go_duration(17'789'851'961), "17.789851961s");
  EXPECT_EQ(go_duration(60'000'000'000), "1m0s");
  EXPECT_EQ(go_duration(3'600'000'000'000), "1h0m0s");
  EXPECT_EQ(go_duration(3'723'500'000'000), "1h2m3.5s");
  EXPECT_EQ(go_duration(-1'500'000'000), "-1.5s");
  EXPECT_EQ(go_duration(INT64_MIN), "-2562047h47m16.854775808s");
  EXPECT_EQ(go_duration(INT64_MAX), "2562047h47m16.854775807s");
}

// ------------------------------------------------------------------ wrapping and tables

TEST(WrapText, SeedWrapsAt30) {
  using V = std::vector<std::string>;
  EXPECT_EQ(wrap_text("NAT source collision resolution failed", 30), (V{"NAT source collision", "resolution failed"}));
  EXPECT_EQ(wrap_text("fragment of yet incomplete packet", 30), (V{"fragment of yet incomplete", "packet"}));
  EXPECT_EQ(wrap_text("fragment out of order within host", 30), (V{"fragment out of order within", "host"}));
  EXPECT_EQ(wrap_text("packets hitting blackhole route", 30), (V{"packets hitting blackhole", "route"}));
  EXPECT_EQ(wrap_text("packets with unsupported IP options", 30), (V{"packets with unsupported IP", "options"}));
  EXPECT_EQ(wrap_text("packets hitting NAT source collision", 30), (V{"packets hitting NAT source", "collision"}));
  EXPECT_EQ(wrap_text("packets with unknown source", 30), (V{"packets with unknown source"}));
}

TEST(WrapText, EdgeCases) {
  using V = std::vector<std::string>;
  EXPECT_EQ(wrap_text("", 30), (V{""}));
  EXPECT_EQ(wrap_text("short", 30), (V{"short"}));
  // A word longer than the limit raises the limit (tablewriter behaviour).
  EXPECT_EQ(wrap_text("abcdefghij xy", 5), (V{"abcdefghij", "xy"}));
  // Minimum raggedness, not greedy: greedy would give "aaa bb", "cc", "dddddd".
  EXPECT_EQ(wrap_text("aaa bb cc dddddd", 6), (V{"aaa", "bb cc", "dddddd"}));
}

TEST(RenderTable, AlignmentAndWrapping) {
  std::string t = render_table({"NAME", "N"}, {{"a", "12"}, {"a long cell that wraps", "3"}}, TableOptions{10});
  EXPECT_EQ(t,
            "+------------+----+\n"
            "|    NAME    | N  |\n"
            "+------------+----+\n"
            "| a          | 12 |\n"
            "| a long     |  3 |\n"
            "| cell that  |    |\n"
            "| wraps      |    |\n"
            "+------------+----+\n");
}

// ------------------------------------------------------------------ counters

// The seed's table (whitespace collapsed in the source document).
const char* kSeedCounters = R"(+----------+--------------------------------+---------+--------+-----+
| CATEGORY | TYPE | INGRESS | EGRESS | XDP |
+----------+--------------------------------+---------+--------+-----+
| Accepted | by another program | 0 | 0 | N/A |
| | by failsafe | 0 | 0 | N/A |
| | by policy | 0 | 4 | N/A |
| Dropped | NAT source collision | 0 | 0 | N/A |
| | resolution failed | | | |
| | QoS control limit | 0 | 0 | N/A |
| | by policy | 0 | 11 | N/A |
| | failed decapsulation | 0 | 0 | N/A |
| | failed encapsulation | 0 | 0 | N/A |
| | failed to create conntrack | 0 | 0 | N/A |
| | fragment of yet incomplete | 0 | 0 | N/A |
| | packet | | | |
| | fragment out of order within | 0 | 0 | N/A |
| | host | | | |
| | fragments not supported | 0 | 0 | N/A |
| | incorrect checksum | 0 | 0 | N/A |
| | malformed IP packets | 0 | 0 | N/A |
| | packets hitting blackhole | 0 | 0 | N/A |
| | route | | | |
| | packets with unknown route | 0 | 0 | N/A |
| | packets with unknown source | 0 | 0 | N/A |
| | packets with unsupported IP | 0 | 0 | N/A |
| | options | | | |
| | too short packets | 0 | 0 | N/A |
| Other | packets hitting NAT source | 0 | 0 | N/A |
| | collision | | | |
| Redirect | neigh | 0 | 0 | N/A |
| | peer | 0 | 0 | N/A |
| | plain | 20 | 0 | N/A |
| Total | packets | 34 | 22 | N/A |
+----------+--------------------------------+---------+--------+-----+
)";

IfaceCounters seed_counters() {
  IfaceCounters c;
  c.ifname = "eth0";
  c.ifindex = 2;
  weir_counters_val in{}, eg{};
  eg.c[WEIR_CNT_ACCEPT_BY_POLICY] = 4;
  eg.c[WEIR_CNT_DROP_BY_POLICY] = 11;
  in.c[WEIR_CNT_REDIRECT_PLAIN] = 20;
  in.c[WEIR_CNT_TOTAL] = 34;
  eg.c[WEIR_CNT_TOTAL] = 22;
  // weir-only rows, absent from the seed, get values too.
  in.c[WEIR_CNT_ACCEPT_ESTABLISHED] = 14;
  eg.c[WEIR_CNT_ACCEPT_ESTABLISHED] = 7;
  c.hooks[WEIR_HOOK_INGRESS] = in;
  c.hooks[WEIR_HOOK_EGRESS] = eg;
  return c;
}

TEST(CountersTable, SeedRowsAppearInOrder) {
  auto got = lines_of(format_counters_table(seed_counters()));
  auto want = lines_of(kSeedCounters);
  // Every seed line appears, in order, among our (whitespace-collapsed) lines; weir's extra
  // rows are interleaved.
  size_t j = 0;
  for (const auto& g : got)
    if (j < want.size() && collapse_ws(g) == want[j]) j++;
  EXPECT_EQ(j, want.size()) << "first seed line not found in order: " << (j < want.size() ? want[j] : "")
                            << "\n" << format_counters_table(seed_counters());
  // Borders are not whitespace and must match exactly (column widths 8, 30, 7, 6, 3).
  EXPECT_EQ(got.front(), want.front());
  EXPECT_EQ(got.back(), want.back());
}

TEST(CountersTable, ExactPadding) {
  auto got = lines_of(format_counters_table(seed_counters()));
  ASSERT_GT(got.size(), 8u);
  EXPECT_EQ(got[1], "| CATEGORY |              TYPE              | INGRESS | EGRESS | XDP |");
  EXPECT_EQ(got[3], "| Accepted | by another program             |       0 |      0 | N/A |");
  EXPECT_EQ(got[4], "|          | by failsafe                    |       0 |      0 | N/A |");
  auto it = std::find(got.begin(), got.end(), "| Dropped  | NAT source collision           |       0 |      0 | N/A |");
  ASSERT_NE(it, got.end());
  EXPECT_EQ(*(it + 1), "|          | resolution failed              |         |        |     |");
  EXPECT_NE(std::find(got.begin(), got.end(), "| Total    | packets                        |      34 |     22 | N/A |"), got.end());
}

TEST(CountersTable, WeirRowsAndCategoryOnlyOnFirstRow) {
  std::string t = format_counters_table(seed_counters());
  auto got = lines_of(t);
  std::vector<std::string> collapsed;
  for (const auto& l : got) collapsed.push_back(collapse_ws(l));
  auto has = [&](const std::string& l) { return std::find(collapsed.begin(), collapsed.end(), l) != collapsed.end(); };
  EXPECT_TRUE(has("| | established flow | 14 | 7 | N/A |")) << t;
  EXPECT_TRUE(has("| | new flow, no policy | 0 | 0 | N/A |")) << t;
  EXPECT_TRUE(has("| | service without backends | 0 | 0 | N/A |")) << t;
  EXPECT_TRUE(has("| | ICMP errors reverse-NATed | 0 | 0 | N/A |")) << t;
  for (const char* cat : {"Accepted", "Dropped", "Other", "Redirect", "Total"}) {
    int n = 0;
    for (const auto& l : collapsed)
      if (l.rfind(std::string("| ") + cat + " |", 0) == 0) n++;
    EXPECT_EQ(n, 1) << cat;
  }
  // Every counter has a row: one row per counter plus continuation rows, plus 4 border/header lines.
  size_t rows = 0;
  for (const auto& l : collapsed)
    if (l.size() > 2 && l[0] == '|' && l.find(" N/A |") != std::string::npos) rows++;
  EXPECT_EQ(rows, static_cast<size_t>(WEIR_CNT__MAX));
}

TEST(CountersTable, MissingHooksShowNA) {
  IfaceCounters c;
  c.ifname = "weir1";
  c.ifindex = 5;
  weir_counters_val x{};
  x.c[WEIR_CNT_TOTAL] = 3;
  c.hooks[WEIR_HOOK_XDP] = x;
  auto got = lines_of(format_counters_table(c));
  EXPECT_NE(std::find(got.begin(), got.end(), "| Total    | packets                        | N/A     | N/A    |   3 |"),
            got.end())
      << format_counters_table(c);
}

TEST(CountersDump, HeadingsPerInterface) {
  auto a = seed_counters();
  auto b = seed_counters();
  b.ifname = "weir7";
  b.ifindex = 9;
  std::string all = format_counters_dump({a, b}, true);
  EXPECT_EQ(all.rfind("eth0 (ifindex 2)\n+---", 0), 0u);
  EXPECT_NE(all.find("\n\nweir7 (ifindex 9)\n+---"), std::string::npos);
  EXPECT_EQ(format_counters_dump({a}, false), format_counters_table(a));
}

TEST(CountersJson, StableNames) {
  auto j = counters_json({seed_counters()});
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["ifname"], "eth0");
  EXPECT_EQ(j[0]["ifindex"], 2);
  EXPECT_EQ(j[0]["hooks"]["ingress"]["total"], 34);
  EXPECT_EQ(j[0]["hooks"]["egress"]["dropped_by_policy"], 11);
  EXPECT_EQ(j[0]["hooks"]["ingress"]["redirect_plain"], 20);
  EXPECT_TRUE(j[0]["hooks"]["xdp"].is_null());
  EXPECT_EQ(j[0]["hooks"]["egress"].size(), static_cast<size_t>(WEIR_CNT__MAX));
}

// ------------------------------------------------------------------ nat

NatFrontend fe(const char* vip, uint16_t port, uint8_t proto, uint32_t id,
               std::vector<std::pair<const char*, uint16_t>> backends, uint32_t local = 0) {
  NatFrontend f;
  f.key.addr = ip(vip);
  f.key.port = htons(port);
  f.key.proto = proto;
  f.val.svc_id = id;
  f.val.count = static_cast<uint32_t>(backends.size());
  f.val.local = local;
  uint32_t i = 0;
  for (auto [a, p] : backends) f.backends.push_back({i++, ip(a), htons(p)});
  return f;
}

std::vector<NatFrontend> seed_nat() {
  return {
      fe("10.96.0.10", 53, 6, 4, {{"192.168.129.66", 53}, {"192.168.129.68", 53}}),
      fe("10.96.0.10", 53, 17, 6, {{"192.168.129.66", 53}, {"192.168.129.68", 53}}),
      fe("10.96.0.10", 9153, 6, 5, {{"192.168.129.66", 9153}, {"192.168.129.68", 9153}}),
      fe("10.105.77.92", 5473, 6, 0, {{"10.128.1.192", 5473}, {"10.128.1.195", 5473}}),
      fe("10.105.187.231", 8081, 6, 2, {{"192.168.105.131", 8081}}),
      fe("10.109.136.88", 7443, 6, 1, {{"192.168.129.72", 7443}}),
      fe("10.109.139.39", 443, 6, 7, {{"192.168.129.67", 5443}, {"192.168.129.69", 5443}}),
      fe("10.96.0.1", 443, 6, 3, {{"10.128.0.255", 6443}}),
  };
}

TEST(NatDump, SeedFormatSortedByVipPortProto) {
  auto entries = seed_nat();
  std::mt19937 rng(7);
  std::shuffle(entries.begin(), entries.end(), rng);
  for (auto& e : entries) std::reverse(e.backends.begin(), e.backends.end());
  EXPECT_EQ(format_nat_dump(entries),
            "10.96.0.1 port 443 proto 6 id 3 count 1 local 0\n"
            "\t3:0 10.128.0.255:6443\n"
            "10.96.0.10 port 53 proto 6 id 4 count 2 local 0\n"
            "\t4:0 192.168.129.66:53\n"
            "\t4:1 192.168.129.68:53\n"
            "10.96.0.10 port 53 proto 17 id 6 count 2 local 0\n"
            "\t6:0 192.168.129.66:53\n"
            "\t6:1 192.168.129.68:53\n"
            "10.96.0.10 port 9153 proto 6 id 5 count 2 local 0\n"
            "\t5:0 192.168.129.66:9153\n"
            "\t5:1 192.168.129.68:9153\n"
            "10.105.77.92 port 5473 proto 6 id 0 count 2 local 0\n"
            "\t0:0 10.128.1.192:5473\n"
            "\t0:1 10.128.1.195:5473\n"
            "10.105.187.231 port 8081 proto 6 id 2 count 1 local 0\n"
            "\t2:0 192.168.105.131:8081\n"
            "10.109.136.88 port 7443 proto 6 id 1 count 1 local 0\n"
            "\t1:0 192.168.129.72:7443\n"
            "10.109.139.39 port 443 proto 6 id 7 count 2 local 0\n"
            "\t7:0 192.168.129.67:5443\n"
            "\t7:1 192.168.129.69:5443\n");
}

TEST(NatDump, MissingBackendAffinityAndEmpty) {
  auto f = fe("10.96.0.20", 80, 6, 9, {{"10.65.0.2", 8080}, {"10.65.0.3", 8080}}, 1);
  f.backends.erase(f.backends.begin() + 1);
  f.val.affinity_timeout = 10800;
  EXPECT_EQ(format_nat_dump({f}),
            "10.96.0.20 port 80 proto 6 id 9 count 2 local 1 affinity 10800s\n"
            "\t9:0 10.65.0.2:8080\n"
            "\t9:1 (missing backend)\n");
  EXPECT_EQ(format_nat_dump({}), "");
  auto none = fe("10.96.0.30", 80, 6, 10, {});
  EXPECT_EQ(format_nat_dump({none}), "10.96.0.30 port 80 proto 6 id 10 count 0 local 0\n");
}

TEST(NatJson, Fields) {
  auto f = fe("10.96.0.20", 80, 6, 9, {{"10.65.0.2", 8080}, {"10.65.0.3", 8080}}, 1);
  f.backends.erase(f.backends.begin() + 1);
  auto j = nat_dump_json({f});
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["vip"], "10.96.0.20");
  EXPECT_EQ(j[0]["port"], 80);
  EXPECT_EQ(j[0]["proto"], 6);
  EXPECT_EQ(j[0]["proto_name"], "TCP");
  EXPECT_EQ(j[0]["id"], 9);
  EXPECT_EQ(j[0]["count"], 2);
  EXPECT_EQ(j[0]["local"], 1);
  ASSERT_EQ(j[0]["backends"].size(), 1u);
  EXPECT_EQ(j[0]["backends"][0]["ip"], "10.65.0.2");
  EXPECT_EQ(j[0]["backends"][0]["port"], 8080);
  EXPECT_EQ(j[0]["backends"][0]["ordinal"], 0);
  EXPECT_EQ(j[0]["missing_ordinals"], nlohmann::json::array({1}));
  EXPECT_EQ(nat_dump_json({}), nlohmann::json::array());
}

// ------------------------------------------------------------------ conntrack

constexpr uint64_t kNow = 1'000'000'000'000ull;  // CLOCK_MONOTONIC "now" of the tests

weir_ct_key norm(uint8_t proto, const char* a1, uint16_t p1, const char* a2, uint16_t p2) {
  uint32_t x = ip(a1), y = ip(a2);
  uint16_t px = htons(p1), py = htons(p2);
  weir_ct_key k{};
  k.proto = proto;
  if (std::make_pair(x, px) <= std::make_pair(y, py)) {
    k.addr_a = x, k.port_a = px, k.addr_b = y, k.port_b = py;
  } else {
    k.addr_a = y, k.port_a = py, k.addr_b = x, k.port_b = px;
  }
  return k;
}

// An entry for client -> server; `client_flags`/`server_flags` are the legs' flags.
CtEntry entry(uint8_t type, uint8_t proto, const char* client, uint16_t cport, const char* server, uint16_t sport,
              uint64_t idle_ns, uint32_t client_flags, uint32_t server_flags) {
  CtEntry e;
  e.key = norm(proto, client, cport, server, sport);
  bool a_is_client = e.key.addr_a == ip(client) && e.key.port_a == htons(cport);
  e.val.type = type;
  e.val.flags = a_is_client ? WEIR_CT_F_A_IS_CLIENT : 0;
  e.val.created_ns = kNow - idle_ns - 5'000'000'000ull;
  e.val.last_seen_ns = kNow - idle_ns;
  (a_is_client ? e.val.a : e.val.b).flags = client_flags;
  (a_is_client ? e.val.b : e.val.a).flags = server_flags;
  return e;
}

constexpr uint32_t kSyn = WEIR_CT_LEG_SYN, kAck = WEIR_CT_LEG_ACK, kFin = WEIR_CT_LEG_FIN;

// A NAT flow client -> vip -> backend: FWD keyed (client, vip), REV keyed (client, backend).
std::vector<CtEntry> nat_pair(const char* client, uint16_t cport, const char* vip, uint16_t vport,
                              const char* backend, uint16_t bport, uint64_t idle_fwd, uint64_t idle_rev,
                              uint32_t cflags, uint32_t sflags) {
  auto f = entry(WEIR_CT_NAT_FWD, 6, client, cport, vip, vport, idle_fwd, cflags, sflags);
  f.val.nat_addr = ip(backend);
  f.val.nat_port = htons(bport);
  auto r = entry(WEIR_CT_NAT_REV, 6, client, cport, backend, bport, idle_rev, cflags, sflags);
  r.val.nat_addr = ip(vip);
  r.val.nat_port = htons(vport);
  return {f, r};
}

std::vector<CtEntry> seed_ct() {
  std::vector<CtEntry> v;
  auto add = [&](std::vector<CtEntry> x) { v.insert(v.end(), x.begin(), x.end()); };
  // REV half seen more recently than FWD: the flow's age is the most recent of the two.
  add(nat_pair("192.168.58.7", 49178, "10.111.57.87", 80, "192.168.105.136", 80, 9'000'000'000, 4'486'606'371,
               kSyn | kAck | kFin, kSyn | kAck | kFin));
  add(nat_pair("10.128.1.192", 58208, "10.109.136.88", 7443, "192.168.58.5", 7443, 4'935'017'508, 6'000'000'000,
               kSyn | kAck, kSyn | kAck));
  v.push_back(entry(WEIR_CT_NORMAL, 6, "10.128.1.194", 41513, "10.128.1.192", 179, 26'442'759'238, kSyn | kAck, kSyn | kAck));
  // Client is side B of the normalised key here (higher address): printed client first anyway.
  v.push_back(entry(WEIR_CT_NORMAL, 17, "162.142.125.240", 30603, "10.128.1.192", 18989, 60'816'678'617, 0, 0));
  v.push_back(entry(WEIR_CT_NORMAL, 17, "127.0.0.1", 48611, "127.0.0.53", 53, 17'789'851'961, 0, 0));
  return v;
}

TEST(CtDump, SeedLinesNatFoldedIntoOne) {
  auto entries = seed_ct();
  std::mt19937 rng(3);
  std::shuffle(entries.begin(), entries.end(), rng);
  EXPECT_EQ(format_ct_dump(entries, kNow),
            "TCP 10.128.1.192:58208 -> 10.109.136.88:7443 -> 192.168.58.5:7443 Active ago 4.935017508s ESTABLISHED\n"
            "TCP 10.128.1.194:41513 -> 10.128.1.192:179 Active ago 26.442759238s ESTABLISHED\n"
            "TCP 192.168.58.7:49178 -> 10.111.57.87:80 -> 192.168.105.136:80 Active ago 4.486606371s CLOSED\n"
            "UDP 127.0.0.1:48611 -> 127.0.0.53:53 Active ago 17.789851961s\n"
            "UDP 162.142.125.240:30603 -> 10.128.1.192:18989 Active ago 1m0.816678617s\n");
}

TEST(CtDump, StatesOrphanReverseAndIcmp) {
  std::vector<CtEntry> v;
  v.push_back(entry(WEIR_CT_NORMAL, 6, "10.65.0.2", 40000, "10.65.0.3", 80, 150'000'000, kSyn, 0));
  v.push_back(entry(WEIR_CT_NORMAL, 6, "10.65.0.2", 40001, "10.65.0.3", 80, 1'000'000'000, kSyn | kAck | kFin, kSyn | kAck));
  v.push_back(entry(WEIR_CT_NORMAL, 6, "10.65.0.2", 40002, "10.65.0.3", 80, 2'000'000'000, kSyn, WEIR_CT_LEG_RST));
  auto pair = nat_pair("10.65.0.2", 40003, "10.96.0.20", 80, "10.65.0.4", 8080, 0, 3'000'000'000, kSyn, 0);
  v.push_back(pair[1]);  // REV only: FWD evicted
  auto icmp = entry(WEIR_CT_NORMAL, 1, "10.65.0.2", 7, "10.65.0.3", 7, 500, 0, 0);
  icmp.val.flags |= WEIR_CT_F_ICMP_ECHO;
  v.push_back(icmp);
  EXPECT_EQ(format_ct_dump(v, kNow),
            "ICMP 10.65.0.2:7 -> 10.65.0.3:7 Active ago 500ns\n"
            "TCP 10.65.0.2:40000 -> 10.65.0.3:80 Active ago 150ms SYN-SENT\n"
            "TCP 10.65.0.2:40001 -> 10.65.0.3:80 Active ago 1s FIN-WAIT\n"
            "TCP 10.65.0.2:40002 -> 10.65.0.3:80 Active ago 2s RESET\n"
            "TCP 10.65.0.2:40003 -> 10.96.0.20:80 -> 10.65.0.4:8080 Active ago 3s SYN-SENT (reverse only)\n");
  EXPECT_EQ(format_ct_dump({}, kNow), "");
}

TEST(CtJson, Fields) {
  auto j = ct_dump_json(seed_ct(), kNow);
  ASSERT_EQ(j.size(), 5u);
  const auto& n = j[2];  // 192.168.58.7 NAT flow (sorted by proto, client)
  EXPECT_EQ(n["proto"], "TCP");
  EXPECT_EQ(n["client"], "192.168.58.7:49178");
  EXPECT_EQ(n["server"], "10.111.57.87:80");
  EXPECT_EQ(n["backend"], "192.168.105.136:80");
  EXPECT_EQ(n["nat"], true);
  EXPECT_EQ(n["state"], "CLOSED");
  EXPECT_EQ(n["idle_ns"], 4'486'606'371);
  EXPECT_EQ(n["last_seen_ago"], "4.486606371s");
  EXPECT_EQ(n["reverse_only"], false);
  EXPECT_EQ(n["client_flags"], "SYN|FIN|ACK");
  EXPECT_EQ(n["age_ns"], 9'000'000'000 + 5'000'000'000);
  const auto& u = j[3];
  EXPECT_EQ(u["proto"], "UDP");
  EXPECT_EQ(u["nat"], false);
  EXPECT_FALSE(u.contains("backend"));
  EXPECT_EQ(u["state"], "");
}

// ------------------------------------------------------------------ conntrack stats

CtStatsReport pressure_report() {
  CtStatsReport r;
  r.map_name = "weir_ct1";
  r.entries = 3891;
  r.max_entries = 4096;
  r.datapath.created = 12430;
  r.datapath.create_failed = 2;
  r.datapath.deleted = 12;
  r.datapath.midflow_miss = 3;
  r.datapath.midflow_renat = 2;
  r.datapath.midflow_reset = 1;
  r.agent.deleted = 8000;
  r.dropped_ct_create = 2;
  return r;
}

TEST(CtStats, TextShowsOccupancyCountersAndTheEvictionFormula) {
  EXPECT_EQ(format_ct_stats(pressure_report()),
            "conntrack table weir_ct1: 3891 of 4096 entries (94.9% full)\n"
            "since the table was created (summed over CPUs):\n"
            "  created                  12430  (a NAT flow creates 2)\n"
            "  creation failures            2\n"
            "  deleted by the datapath     12\n"
            "  deleted by the agent      8000\n"
            "  evicted (estimated)        527  = created - deleted by the datapath - deleted by the agent - present\n"
            "  mid-flow misses              3  (TCP packets of an established flow that found no entry)\n"
            "    re-NATed to a backend      2\n"
            "    answered with a reset      1\n"
            "dropped \"failed to create conntrack\" (all interfaces and hooks): 2\n");
}

TEST(CtStats, PercentRoundsDownSoOnlyAFullTableShows100) {
  CtStatsReport r;
  r.map_name = "weir_ct1";
  r.max_entries = 4096;
  r.entries = 4095;
  EXPECT_NE(format_ct_stats(r).find("4095 of 4096 entries (99.9% full)"), std::string::npos);
  r.entries = 4096;
  EXPECT_NE(format_ct_stats(r).find("4096 of 4096 entries (100.0% full)"), std::string::npos);
  r.entries = 0;
  EXPECT_NE(format_ct_stats(r).find("0 of 4096 entries (0.0% full)"), std::string::npos);
  r.max_entries = 0;  // a map that cannot exist, but no division by zero
  EXPECT_NE(format_ct_stats(r).find("(0.0% full)"), std::string::npos);
}

TEST(CtStats, EvictionEstimateNeverNegative) {
  CtStatsReport r = pressure_report();
  r.entries = 5000;  // more present than created minus deleted: entries older than the statistics
  EXPECT_NE(format_ct_stats(r).find("evicted (estimated)          0"), std::string::npos);
  EXPECT_EQ(ct_stats_json(r)["evictions_estimated"], 0);
}

TEST(CtStatsJson, Fields) {
  auto j = ct_stats_json(pressure_report());
  EXPECT_EQ(j["map"], "weir_ct1");
  EXPECT_EQ(j["entries"], 3891);
  EXPECT_EQ(j["max_entries"], 4096);
  EXPECT_NEAR(j["occupancy_percent"].get<double>(), 94.99, 0.01);
  EXPECT_EQ(j["created"], 12430);
  EXPECT_EQ(j["create_failed"], 2);
  EXPECT_EQ(j["deleted_datapath"], 12);
  EXPECT_EQ(j["deleted_agent"], 8000);
  EXPECT_EQ(j["evictions_estimated"], 12430 - 12 - 8000 - 3891);
  EXPECT_EQ(j["evictions_formula"], "created - deleted_datapath - deleted_agent - entries");
  EXPECT_EQ(j["midflow_miss"], 3);
  EXPECT_EQ(j["midflow_renat"], 2);
  EXPECT_EQ(j["midflow_reset"], 1);
  EXPECT_EQ(j["dropped_ct_create"], 2);
  EXPECT_EQ(j.size(), 14u);
}

// ------------------------------------------------------------------ routes / ifstate / version / help

TEST(RoutesDump, Format) {
  RouteEntry local{};
  local.key = {32, ip("10.65.0.2")};
  local.val.flags = WEIR_RT_F_LOCAL_WORKLOAD | WEIR_RT_F_IN_POOL;
  local.val.ifindex = 5;
  const uint8_t mac[6] = {0x02, 0x00, 0x0a, 0x41, 0x00, 0x02};
  std::memcpy(local.val.mac, mac, 6);
  RouteEntry pool{};
  pool.key = {16, ip("10.65.0.0")};
  pool.val.flags = WEIR_RT_F_IN_POOL;
  RouteEntry remote{};
  remote.key = {24, ip("10.66.0.0")};
  remote.val.flags = WEIR_RT_F_REMOTE | WEIR_RT_F_IN_POOL;
  remote.val.next_hop = ip("192.168.0.2");
  EXPECT_EQ(format_routes_dump({remote, local, pool}),
            "10.65.0.0/16: in pool\n"
            "10.65.0.2/32: local workload, in pool ifindex 5 mac 02:00:0a:41:00:02\n"
            "10.66.0.0/24: remote, in pool next hop 192.168.0.2\n");
  auto j = routes_json({remote, local, pool});
  ASSERT_EQ(j.size(), 3u);
  EXPECT_EQ(j[1]["cidr"], "10.65.0.2/32");
  EXPECT_EQ(j[1]["flags"], nlohmann::json::array({"local workload", "in pool"}));
  EXPECT_EQ(j[1]["ifindex"], 5);
  EXPECT_EQ(j[1]["mac"], "02:00:0a:41:00:02");
  EXPECT_TRUE(j[1]["next_hop"].is_null());
  EXPECT_EQ(j[2]["next_hop"], "192.168.0.2");
  EXPECT_TRUE(j[0]["mac"].is_null());
}

TEST(ArpDump, Format) {
  ArpEntry reach;
  reach.next_hop = ip("192.168.200.3");
  reach.routes = {"10.65.1.0/24", "10.65.1.2/32"};
  reach.present = true;
  reach.dev = "weirmau";
  reach.src_mac = {0x02, 0, 0, 0, 0, 0x01};
  reach.dst_mac = {0x02, 0, 0, 0, 0, 0x02};
  reach.resolved = true;
  reach.state = "REACHABLE";
  ArpEntry incomplete = reach;
  incomplete.next_hop = ip("192.168.200.5");
  incomplete.routes = {"10.65.3.0/24"};
  incomplete.resolved = false;
  incomplete.dst_mac = {};
  incomplete.state = "INCOMPLETE";
  ArpEntry none;
  none.next_hop = ip("192.168.200.4");
  none.routes = {"10.65.2.0/24"};
  EXPECT_EQ(format_arp_dump({incomplete, none, reach}),
            "192.168.200.3 dev weirmau: src 02:00:00:00:00:01 dst 02:00:00:00:00:02 REACHABLE "
            "(next hop of 10.65.1.0/24, 10.65.1.2/32)\n"
            "192.168.200.4: no neighbour entry yet: the kernel resolves it on the first packet "
            "(next hop of 10.65.2.0/24)\n"
            "192.168.200.5 dev weirmau: src 02:00:00:00:00:01 dst (unresolved) INCOMPLETE "
            "(next hop of 10.65.3.0/24)\n");
  auto j = arp_json({none, reach});
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["next_hop"], "192.168.200.3");
  EXPECT_EQ(j[0]["dst_mac"], "02:00:00:00:00:02");
  EXPECT_EQ(j[0]["routes"], nlohmann::json::array({"10.65.1.0/24", "10.65.1.2/32"}));
  EXPECT_TRUE(j[1]["dev"].is_null());
  EXPECT_TRUE(j[1]["state"].is_null());
}

TEST(IfstateDump, Format) {
  IfstateEntry a{};
  a.ifindex = 5;
  std::strcpy(a.val.name, "weir1a2b3c");
  a.val.flags = WEIR_IF_F_WORKLOAD | WEIR_IF_F_READY;
  a.val.ingress_slot = 3;
  a.val.egress_slot = WEIR_NO_POLICY_SLOT;
  const uint8_t mac[6] = {0x02, 0, 0, 0, 0, 0x05};
  std::memcpy(a.val.host_mac, mac, 6);
  IfstateEntry b{};
  b.ifindex = 3;
  std::strcpy(b.val.name, "eth0");
  b.val.ingress_slot = WEIR_NO_POLICY_SLOT;
  b.val.egress_slot = WEIR_NO_POLICY_SLOT;
  EXPECT_EQ(format_ifstate_dump({a, b}),
            "3 : {name: eth0, flags: none, ingress slot: none, egress slot: none, host mac: 00:00:00:00:00:00}\n"
            "5 : {name: weir1a2b3c, flags: workload,ready, ingress slot: 3, egress slot: none, host mac: "
            "02:00:00:00:00:05}\n");
  auto j = ifstate_json({a, b});
  EXPECT_EQ(j[1]["name"], "weir1a2b3c");
  EXPECT_EQ(j[1]["flags"], nlohmann::json::array({"workload", "ready"}));
  EXPECT_EQ(j[1]["ingress_slot"], 3);
  EXPECT_TRUE(j[1]["egress_slot"].is_null());
  EXPECT_EQ(j[1]["mac"], "02:00:00:00:00:05");
  EXPECT_EQ(j[0]["flags"], nlohmann::json::array());
}

TEST(Version, TextAndJson) {
  VersionInfo v{"0.1.0", 1, "v1.1", "6.18.0", "tcx"};
  EXPECT_EQ(format_version(v),
            "weir version: 0.1.0\nmap layout version: 1\nlibbpf version: v1.1\nkernel: 6.18.0\ntc attach mode: tcx\n");
  auto j = version_json(v);
  EXPECT_EQ(j["weir"], "0.1.0");
  EXPECT_EQ(j["maps_layout"], 1);
  EXPECT_EQ(j["attach_mode"], "tcx");
}

TEST(Help, AvailableCommandsSorted) {
  std::string h = format_help({{"nat", "Manipulates network address translation (nat)"}, {"cleanup", "Removes all"}});
  EXPECT_EQ(h,
            "Available Commands:\n"
            "  cleanup     Removes all\n"
            "  nat         Manipulates network address translation (nat)\n");
}

// ------------------------------------------------------------------ profiling

TEST(ProfilingTable, TheSeedsColumnsAverageAndRunsOrDashes) {
  IfaceProfile eth0{"eth0", 2, {}};
  eth0.v[WEIR_HOOK_INGRESS][WEIR_PROF_NEW] = {4, 10000};
  eth0.v[WEIR_HOOK_INGRESS][WEIR_PROF_EST] = {3, 4000};
  eth0.v[WEIR_HOOK_EGRESS][WEIR_PROF_NEW] = {749, 4715419};
  eth0.v[WEIR_HOOK_EGRESS][WEIR_PROF_EST] = {1, 1};
  IfaceProfile lo{"lo", 1, {}};
  lo.v[WEIR_HOOK_EGRESS][WEIR_PROF_NEW] = {2, 285};
  const std::string t = format_profiling({lo, eth0});
  std::vector<std::string> rows;  // the lines with cells, whitespace collapsed
  {
    std::istringstream in(t);
    for (std::string line; std::getline(in, line);)
      if (line.rfind('|', 0) == 0) rows.push_back(collapse_ws(line));
  }
  const std::vector<std::string> want = {
      "| IFACE | INGRESS NEW | # | INGRESS EST | # | EGRESS NEW | # | EGRESS EST | # |",
      "| lo | --- | --- | --- | --- | 142.500 ns | 2 | --- | --- |",
      "| eth0 | 2500.000 ns | 4 | 1333.333 ns | 3 | 6295.619 ns | 749 | 1.000 ns | 1 |"};
  EXPECT_EQ(rows, want) << t;
  // Every line of the table has the same width.
  std::istringstream in(t);
  size_t width = 0;
  for (std::string line; std::getline(in, line);) {
    if (width == 0) width = line.size();
    EXPECT_EQ(line.size(), width) << line;
  }
  auto j = profiling_json({eth0});
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["ifname"], "eth0");
  EXPECT_EQ(j[0]["ingress"]["new"]["runs"], 4);
  EXPECT_EQ(j[0]["ingress"]["new"]["total_ns"], 10000);
  EXPECT_DOUBLE_EQ(j[0]["ingress"]["new"]["avg_ns"].get<double>(), 2500.0);
  EXPECT_EQ(j[0]["egress"]["est"]["runs"], 1);
  EXPECT_DOUBLE_EQ(profiling_json({lo})[0]["ingress"]["est"]["avg_ns"].get<double>(), 0.0);
}

}  // namespace
}  // namespace weir::cli
