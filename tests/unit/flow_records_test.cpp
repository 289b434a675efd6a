// Flow records without the kernel: the event and flow-end conversions (dataplane/flow_events.h),
// the rate-limit settings, the names of pods and services (calc/flow_names.h) and of the rule or
// tier default behind a policy drop (calc::pol::find_rule).
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include "calc/conntrack.h"
#include "calc/flow_names.h"
#include "calc/policy_ir.h"
#include "dataplane/flow_events.h"
#include "maps/decode.h"

namespace weir {
namespace {

uint32_t be(const char* ip) { return model::Ipv4::parse(ip)->network_order(); }
model::Ipv4 ip(const char* s) { return *model::Ipv4::parse(s); }

TEST(FlowEventConversion, AStartCarriesTheBackendAndTheWorkloadsDirection) {
  weir_flow_event ev{};
  ev.ts_ns = 5'000'000'000;
  ev.type = WEIR_FLOW_EV_START;
  ev.saddr = be("10.65.0.2");
  ev.daddr = be("10.96.0.10");
  ev.sport = htons(43210);
  ev.dport = htons(80);
  ev.nat_addr = be("10.65.1.3");
  ev.nat_port = htons(8080);
  ev.proto = 6;
  ev.ifindex = 7;
  ev.hook = WEIR_HOOK_INGRESS;
  ev.reason = WEIR_CNT_REDIRECT_PLAIN;
  ev.tcp_flags = 0x02;
  const model::Flow f = dataplane::flow_from_event(ev, 1'000'000'000'000);
  EXPECT_EQ(f.event, model::FlowEvent::Start);
  EXPECT_EQ(f.verdict, model::FlowVerdict::Forwarded);
  EXPECT_EQ(f.time_unix_ns, 1'005'000'000'000);
  EXPECT_EQ(f.source.ip, ip("10.65.0.2"));
  EXPECT_EQ(f.source.port, 43210);
  EXPECT_EQ(f.destination.ip, ip("10.96.0.10"));
  EXPECT_EQ(f.destination.port, 80);
  ASSERT_TRUE(f.translated.has_value());
  EXPECT_EQ(f.translated->ip, ip("10.65.1.3"));
  EXPECT_EQ(f.translated->port, 8080);
  EXPECT_EQ(f.direction, model::TrafficDirection::Egress) << "from_wl: what the pod sends";
  EXPECT_EQ(f.tcp_flags, 0x02);
  EXPECT_TRUE(f.drop_reason.empty());
}

TEST(FlowEventConversion, ADropNamesItsCounterAndIcmpHasNoPorts) {
  weir_flow_event ev{};
  ev.type = WEIR_FLOW_EV_DROP;
  ev.saddr = be("10.65.0.2");
  ev.daddr = be("10.65.0.9");
  ev.sport = htons(77);  // ICMP echo id: not a port
  ev.dport = htons(77);
  ev.proto = 1;
  ev.icmp_type = 8;
  ev.hook = WEIR_HOOK_EGRESS;
  ev.reason = WEIR_CNT_DROP_BY_POLICY;
  const model::Flow f = dataplane::flow_from_event(ev, 0);
  EXPECT_EQ(f.event, model::FlowEvent::Drop);
  EXPECT_EQ(f.verdict, model::FlowVerdict::Dropped);
  EXPECT_EQ(f.drop_reason, "dropped_by_policy");
  EXPECT_EQ(f.drop_reason_text, "by policy");
  EXPECT_EQ(f.direction, model::TrafficDirection::Ingress) << "to_wl: what the pod receives";
  EXPECT_EQ(f.source.port, 0);
  EXPECT_EQ(f.icmp_type, 8);
  EXPECT_FALSE(f.translated.has_value());
}

TEST(FlowEventConversion, AnUnderlayDropComesIntoTheNode) {
  weir_flow_event ev{};
  ev.type = WEIR_FLOW_EV_DROP;
  ev.saddr = be("192.168.200.3");
  ev.daddr = be("192.168.200.2");
  ev.sport = htons(50000);
  ev.dport = htons(4789);
  ev.proto = 17;
  ev.hook = WEIR_HOOK_INGRESS;
  ev.reason = WEIR_CNT_DROP_DECAP;
  ev.flags = WEIR_FLOW_F_UNDERLAY;
  const model::Flow f = dataplane::flow_from_event(ev, 0);
  EXPECT_EQ(f.direction, model::TrafficDirection::Ingress) << "weir_from_ul: into the node, not a pod's egress";
  EXPECT_EQ(f.source.ip, ip("192.168.200.3"));
  EXPECT_EQ(f.destination.port, 4789);
  EXPECT_EQ(f.verdict, model::FlowVerdict::Dropped);
  EXPECT_FALSE(f.drop_reason.empty());
  ev.flags = 0;
  EXPECT_EQ(dataplane::flow_from_event(ev, 0).direction, model::TrafficDirection::Egress);
}

TEST(FlowEventConversion, TheDropRangeIsEveryDroppedCounter) {
  // The datapath sends a drop's event for the outcomes WEIR_CNT_DROP_FIRST..LAST (lib/flow.h).
  for (uint32_t id = 0; id < WEIR_CNT__MAX; id++) {
    const auto m = maps::counter_meta(id);
    ASSERT_TRUE(m.has_value());
    const bool in_range = id >= WEIR_CNT_DROP_FIRST && id <= WEIR_CNT_DROP_LAST;
    EXPECT_EQ(in_range, m->category == "Dropped" && m->outcome) << m->json_name;
  }
}

weir_ct_val entry(bool a_is_client, uint8_t type) {
  weir_ct_val v{};
  v.type = type;
  v.flags = a_is_client ? WEIR_CT_F_A_IS_CLIENT : 0;
  v.created_ns = 1'000;
  v.last_seen_ns = 9'000;
  return v;
}

TEST(FlowEnd, APlainFlowReportsEachWayAndWhyItEnded) {
  dataplane::CtRemoved r;
  r.key = calc::ct_make_key(ip("10.65.0.9"), 5000, ip("10.65.0.2"), 80, 6);
  // 10.65.0.2:80 < 10.65.0.9:5000: side A is the server; the client is B.
  r.val = entry(false, WEIR_CT_NORMAL);
  r.val.packets_b = 10;
  r.val.bytes_b = 1000;
  r.val.packets_a = 8;
  r.val.bytes_a = 9000;
  r.val.a.flags = WEIR_CT_LEG_SYN | WEIR_CT_LEG_ACK | WEIR_CT_LEG_FIN;
  r.val.b.flags = WEIR_CT_LEG_SYN | WEIR_CT_LEG_ACK | WEIR_CT_LEG_FIN | WEIR_CT_LEG_WORKLOAD;
  r.val.b.ifindex = 12;
  model::Flow f = dataplane::flow_end_of(r, 100);
  EXPECT_EQ(f.event, model::FlowEvent::End);
  EXPECT_EQ(f.source.ip, ip("10.65.0.9"));
  EXPECT_EQ(f.source.port, 5000);
  EXPECT_EQ(f.destination.ip, ip("10.65.0.2"));
  EXPECT_EQ(f.destination.port, 80);
  EXPECT_EQ(f.packets_sent, 10u);
  EXPECT_EQ(f.bytes_sent, 1000u);
  EXPECT_EQ(f.packets_received, 8u);
  EXPECT_EQ(f.bytes_received, 9000u);
  EXPECT_EQ(f.duration_ns, 8'000u);
  EXPECT_EQ(f.time_unix_ns, 9'100);
  EXPECT_EQ(f.close_reason, "fin");
  EXPECT_EQ(f.ifindex, 12u) << "the client is a local workload";
  EXPECT_EQ(f.direction, model::TrafficDirection::Egress);

  r.val.a.flags |= WEIR_CT_LEG_RST;
  EXPECT_EQ(dataplane::flow_end_of(r, 0).close_reason, "rst");
  r.val.a.flags = WEIR_CT_LEG_SYN | WEIR_CT_LEG_ACK;
  r.val.b.flags = WEIR_CT_LEG_SYN | WEIR_CT_LEG_ACK;
  EXPECT_EQ(dataplane::flow_end_of(r, 0).close_reason, "idle timeout");
  r.stale_backend = true;
  EXPECT_EQ(dataplane::flow_end_of(r, 0).close_reason, "backend removed");
}

TEST(FlowEnd, ANatPairSumsBothHalvesAndNamesVipAndBackend) {
  const auto client = ip("10.65.0.2"), vip = ip("10.96.0.10"), backend = ip("10.65.1.3");
  bool c_first = false;
  dataplane::CtRemoved r;
  r.key = calc::ct_make_key(client, 40000, vip, 80, 6, &c_first);
  r.val = entry(c_first, WEIR_CT_NAT_FWD);
  r.val.nat_addr = backend.network_order();
  r.val.nat_port = htons(8080);
  (c_first ? r.val.packets_a : r.val.packets_b) = 3;
  bool rc_first = false;
  (void)calc::ct_make_key(client, 40000, backend, 8080, 6, &rc_first);
  weir_ct_val rev = entry(rc_first, WEIR_CT_NAT_REV);
  rev.created_ns = 500;
  rev.last_seen_ns = 12'000;
  (rc_first ? rev.packets_a : rev.packets_b) = 1;  // the client's packets that looked up REV
  (rc_first ? rev.packets_b : rev.packets_a) = 4;  // the backend's answers
  r.twin = rev;
  model::Flow f = dataplane::flow_end_of(r, 0);
  EXPECT_EQ(f.source.ip, client);
  EXPECT_EQ(f.destination.ip, vip);
  EXPECT_EQ(f.destination.port, 80);
  ASSERT_TRUE(f.translated);
  EXPECT_EQ(f.translated->ip, backend);
  EXPECT_EQ(f.translated->port, 8080);
  EXPECT_EQ(f.packets_sent, 4u);
  EXPECT_EQ(f.packets_received, 4u);
  EXPECT_EQ(f.duration_ns, 11'500u) << "from the older creation to the later packet of the pair";
}

TEST(FlowEventSettingsTest, RateAndBurstBecomeAnIntervalAndABucketDepth) {
  weir_flow_cfg c = dataplane::flow_cfg_of({1000, 1000});
  EXPECT_EQ(c.flags, WEIR_FLOW_CFG_START | WEIR_FLOW_CFG_DROP | WEIR_FLOW_CFG_END);
  EXPECT_EQ(c.interval_ns, 1'000'000u);
  EXPECT_EQ(c.burst_ns, 999'000'000u);
  c = dataplane::flow_cfg_of({0, 1000});
  EXPECT_EQ(c.flags, 0u) << "rate 0: no events";
  c = dataplane::flow_cfg_of({3, 0});
  EXPECT_EQ(c.interval_ns, 333'333'333u);
  EXPECT_EQ(c.burst_ns, 0u) << "burst 0 means 1: no event ahead of the rate";
}

TEST(FlowNames, PodsAndServicesAreNamedFromTheCalcOutput) {
  calc::Output out;
  calc::Route r1;
  r1.cidr = model::Cidr{ip("10.65.0.2"), 32};
  r1.workload = "default/client";
  calc::Route r2;
  r2.cidr = model::Cidr{ip("10.65.1.3"), 32};
  r2.workload = "shop/web-1";
  calc::Route cidr;
  cidr.cidr = model::Cidr{ip("10.66.0.0"), 24};  // another node's pod CIDR: no workload
  out.routes = {r1, r2, cidr};
  calc::Frontend fe;
  fe.key = calc::FrontendKey{ip("10.96.0.10"), 80, 6};
  fe.service = "shop/web:http";
  out.frontends = {fe};
  calc::FlowNamer n;
  n.update(out);

  model::Flow f;
  f.proto = 6;
  f.source.ip = ip("10.65.0.2");
  f.destination.ip = ip("10.96.0.10");
  f.destination.port = 80;
  f.translated = model::FlowPeer{ip("10.65.1.3"), 8080, "", "", "", ""};
  n.name(f);
  EXPECT_EQ(f.source.ns, "default");
  EXPECT_EQ(f.source.pod, "client");
  EXPECT_EQ(f.destination.service_ns, "shop");
  EXPECT_EQ(f.destination.service, "web");
  EXPECT_EQ(f.destination.pod, "");
  EXPECT_EQ(f.translated->ns, "shop");
  EXPECT_EQ(f.translated->pod, "web-1");

  model::Flow udp = f;
  udp.proto = 17;
  udp.destination.service.clear();
  n.name(udp);
  EXPECT_EQ(udp.destination.service, "") << "the frontend is TCP only";
}

TEST(FindRule, ARuleIdAndATierDefaultAreNamed) {
  namespace pol = calc::pol;
  pol::EndpointPolicy p;
  pol::Rule allow;
  allow.id = 11;
  allow.action = pol::Action::Allow;
  allow.match.protocol = 6;
  allow.match.src_sets = {42};
  pol::Rule deny;
  deny.id = 12;
  deny.action = pol::Action::Deny;
  deny.match.dst_ports = {{80, 80}};
  pol::Rule any;
  any.id = 13;
  any.action = pol::Action::Deny;
  p.tiers.push_back({"security", {{"global-deny", {any}}}, pol::Action::Pass});
  p.tiers.push_back({"kubernetes", {{"default/knp.default.web", {allow, deny}}}, pol::Action::Deny});

  auto r = pol::find_rule(p, 12);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->tier, "kubernetes");
  EXPECT_EQ(r->policy, "default/knp.default.web");
  EXPECT_EQ(r->rule_index, 1);
  EXPECT_EQ(r->action, pol::Action::Deny);
  EXPECT_EQ(r->match_type, 3u) << "ports only: L4";
  EXPECT_EQ(pol::find_rule(p, 11)->match_type, 2u) << "a set and a protocol: L3 and L4";
  EXPECT_EQ(pol::find_rule(p, 13)->match_type, 4u) << "matches everything";

  r = pol::find_rule(p, pol::tier_default_rule_id(1));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->tier, "kubernetes");
  EXPECT_EQ(r->policy, "default/knp.default.web") << "the policy that isolated the endpoint";
  EXPECT_EQ(r->rule_index, -1);
  EXPECT_EQ(r->action, pol::Action::Deny);
  EXPECT_EQ(r->match_type, 0u);
  EXPECT_FALSE(pol::find_rule(p, pol::tier_default_rule_id(2)).has_value()) << "no third tier";
  EXPECT_FALSE(pol::find_rule(p, 0).has_value());
  EXPECT_FALSE(pol::find_rule(p, 99).has_value());
}

}  // namespace
}  // namespace weir
