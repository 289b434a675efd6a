// Flow records as JSON (src/model/flow.h, docs/observe.md "JSON"): Hubble's field names and
// values, weir's own fields, lossless round trips and errors naming the field. No root needed.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "model/flow.h"

namespace weir::model {
namespace {

using nlohmann::json;

Ipv4 ip(const char* s) { return *Ipv4::parse(s); }

// 2026-12-05T14:07:07.123456789Z
constexpr int64_t kTime = 1796479627123456789;

// A TCP SYN from pod1 to the service web's VIP, which NAT sent to pod2.
Flow start_through_service() {
  Flow f;
  f.time_unix_ns = kTime;
  f.event = FlowEvent::Start;
  f.verdict = FlowVerdict::Forwarded;
  f.proto = 6;
  f.tcp_flags = 0x02;
  f.source = {ip("10.65.0.2"), 40000, "default", "pod1", "", ""};
  f.destination = {ip("10.96.0.10"), 80, "", "", "default", "web"};
  f.translated = FlowPeer{ip("10.65.0.3"), 8080, "default", "pod2", "", ""};
  f.node = "node1";
  f.interface = "weir1p1";
  f.ifindex = 7;
  f.direction = TrafficDirection::Egress;
  return f;
}

// A UDP packet to pod3 denied by a namespaced policy's rule 2 in tier "security".
Flow policy_drop() {
  Flow f;
  f.time_unix_ns = kTime + 1000;
  f.event = FlowEvent::Drop;
  f.verdict = FlowVerdict::Dropped;
  f.proto = 17;
  f.source = {ip("10.65.0.2"), 5353, "default", "pod1", "", ""};
  f.destination = {ip("10.65.0.4"), 53, "prod", "pod3", "", ""};
  f.node = "node1";
  f.interface = "weir1p3";
  f.ifindex = 9;
  f.direction = TrafficDirection::Ingress;
  f.drop_reason = "dropped_by_policy";
  f.drop_reason_text = "by policy";
  f.policy = {"security", "prod/deny-dns", 2, "deny", 2};
  return f;
}

// The end of a TCP flow through a service, with its counts.
Flow flow_end() {
  Flow f = start_through_service();
  f.event = FlowEvent::End;
  f.tcp_flags = 0;
  f.time_unix_ns = kTime + 5000000000;
  f.packets_sent = 6;
  f.bytes_sent = 520;
  f.packets_received = 4;
  f.bytes_received = 3000;
  f.duration_ns = 1500000000;
  f.close_reason = "fin";
  return f;
}

TEST(FlowJson, StartThroughServiceHasHubbleFields) {
  json j = to_json(start_through_service());
  EXPECT_EQ(j.at("time"), "2026-12-05T14:07:07.123456789Z");
  EXPECT_EQ(j.at("verdict"), "FORWARDED");
  EXPECT_FALSE(j.contains("drop_reason_desc"));
  EXPECT_EQ(j.at("IP"),
            json::parse(R"({"source":"10.65.0.2","destination":"10.96.0.10","ipVersion":"IPv4"})"));
  EXPECT_EQ(
      j.at("l4"),
      json::parse(R"({"TCP":{"source_port":40000,"destination_port":80,"flags":{"SYN":true}}})"));
  EXPECT_EQ(j.at("source"), json::parse(R"({"namespace":"default","pod_name":"pod1"})"));
  EXPECT_EQ(j.at("destination"), json::object());
  EXPECT_EQ(j.at("destination_service"), json::parse(R"({"namespace":"default","name":"web"})"));
  EXPECT_FALSE(j.contains("source_service"));
  EXPECT_EQ(j.at("traffic_direction"), "EGRESS");
  EXPECT_EQ(j.at("policy_match_type"), 0);
  EXPECT_EQ(j.at("interface"), json::parse(R"({"index":7,"name":"weir1p1"})"));
  EXPECT_EQ(j.at("node_name"), "node1");
  EXPECT_EQ(j.at("is_reply"), false);
  EXPECT_EQ(j.at("Type"), "L3_L4");
  EXPECT_EQ(j.at("Summary"), "TCP Flags: SYN");
  EXPECT_FALSE(j.contains("egress_denied_by"));
  EXPECT_FALSE(j.contains("ingress_denied_by"));
  EXPECT_EQ(j.at("weir"), json::parse(R"({"event":"flow_start",
      "translated":{"ip":"10.65.0.3","port":8080,"namespace":"default","pod_name":"pod2"}})"));
}

TEST(FlowJson, PolicyDropHasReasonAndDeniedBy) {
  json j = to_json(policy_drop());
  EXPECT_EQ(j.at("verdict"), "DROPPED");
  EXPECT_EQ(j.at("drop_reason_desc"), "POLICY_DENIED");
  EXPECT_EQ(j.at("l4"), json::parse(R"({"UDP":{"source_port":5353,"destination_port":53}})"));
  EXPECT_EQ(j.at("traffic_direction"), "INGRESS");
  EXPECT_EQ(j.at("policy_match_type"), 2);
  EXPECT_EQ(j.at("ingress_denied_by"), json::parse(R"([{"name":"deny-dns","namespace":"prod",
      "kind":"NetworkPolicy","labels":["weir:tier=security"]}])"));
  EXPECT_FALSE(j.contains("egress_denied_by"));
  EXPECT_EQ(j.at("Summary"), "policy prod/deny-dns rule 2 (tier security) denied; UDP");
  EXPECT_EQ(j.at("weir"), json::parse(R"({"event":"drop","drop_reason":"dropped_by_policy",
      "drop_reason_text":"by policy",
      "policy":{"tier":"security","name":"prod/deny-dns","rule_index":2,"action":"deny"}})"));
}

TEST(FlowJson, GlobalPolicyTierDefaultDropOnEgress) {
  Flow f = policy_drop();
  f.direction = TrafficDirection::Egress;
  f.policy = {"default", "deny-all", -1, "deny", 0};
  json j = to_json(f);
  EXPECT_EQ(j.at("egress_denied_by"), json::parse(R"([{"name":"deny-all","namespace":"",
      "kind":"GlobalNetworkPolicy","labels":["weir:tier=default"]}])"));
  EXPECT_FALSE(j.contains("ingress_denied_by"));
  EXPECT_EQ(j.at("Summary"), "policy deny-all (tier default) denied; UDP");
}

TEST(FlowJson, DropReasonsMapToHubbleNames) {
  Flow f = policy_drop();
  f.policy = {};
  const std::pair<const char*, const char*> cases[] = {
      {"dropped_unknown_source", "INVALID_SOURCE_IP"},
      {"dropped_ct_create", "CT_MAP_INSERTION_FAILED"},
      {"dropped_no_backend", "SERVICE_BACKEND_NOT_FOUND"},
      {"dropped_tail_call", "MISSED_TAIL_CALL"},
      {"dropped_rewrite", "ERROR_WRITING_TO_PACKET"},
      {"dropped_frag_incomplete", "FIRST_LOGICAL_DATAGRAM_FRAGMENT_NOT_FOUND"},
      {"dropped_vlan", "VLAN_FILTERED"},
      {"dropped_malformed", "INVALID_PACKET_DROPPED"},
      {"dropped_short", "INVALID_PACKET_DROPPED"},
      {"dropped_bad_csum", "INVALID_PACKET_DROPPED"},
      {"dropped_unknown_route", "UNKNOWN_L3_TARGET_ADDRESS"},
      {"dropped_nat_collision", "DROP_REASON_UNKNOWN"},
      {"", "DROP_REASON_UNKNOWN"},
  };
  for (const auto& [weir, hubble] : cases) {
    f.drop_reason = weir;
    json j = to_json(f);
    EXPECT_EQ(j.at("drop_reason_desc"), hubble) << weir;
    EXPECT_FALSE(j.contains("ingress_denied_by")) << weir;
  }
  f.drop_reason = "dropped_no_backend";
  f.drop_reason_text = "service without backends";
  EXPECT_EQ(to_json(f).at("Summary"), "service without backends; UDP");
}

TEST(FlowJson, FlowEndHasCountsUnderWeir) {
  json j = to_json(flow_end());
  EXPECT_EQ(j.at("verdict"), "FORWARDED");
  EXPECT_FALSE(j.at("l4").at("TCP").contains("flags"));
  const json& w = j.at("weir");
  EXPECT_EQ(w.at("event"), "flow_end");
  EXPECT_EQ(w.at("packets_sent"), 6);
  EXPECT_EQ(w.at("bytes_sent"), 520);
  EXPECT_EQ(w.at("packets_received"), 4);
  EXPECT_EQ(w.at("bytes_received"), 3000);
  EXPECT_EQ(w.at("duration_ns"), 1500000000);
  EXPECT_EQ(w.at("close_reason"), "fin");
  EXPECT_EQ(
      j.at("Summary"),
      "TCP flow ended (fin) after 1.5s: sent 6 packets 520 bytes, received 4 packets 3000 bytes");
  // A start carries none of them.
  EXPECT_FALSE(to_json(start_through_service()).at("weir").contains("packets_sent"));
}

TEST(FlowJson, RoundTripsAreLossless) {
  Flow icmp = policy_drop();
  icmp.proto = 1;
  icmp.icmp_type = 8;
  icmp.icmp_code = 0;
  icmp.source.port = 0;
  icmp.destination.port = 0;
  Flow icmp_with_id = icmp;  // conntrack's echo id as the port
  icmp_with_id.source.port = 4242;
  icmp_with_id.destination.port = 4242;
  Flow gre = policy_drop();
  gre.proto = 47;
  gre.source.port = 0;
  gre.destination.port = 0;
  gre.direction = TrafficDirection::Unknown;
  Flow odd = flow_end();  // every optional field set at once, unusual values
  odd.time_unix_ns = -1;  // 1969-12-31T23:59:59.999999999Z
  odd.tcp_flags = 0xff;
  odd.source.service_ns = "kube-system";
  odd.source.service = "dns";
  odd.translated->service_ns = "x";
  odd.translated->service = "y";
  odd.policy = {"", "", -1, "allow", 4};
  odd.drop_reason = "dropped_vlan";
  odd.duration_ns = UINT64_MAX;
  odd.bytes_received = UINT64_MAX;
  Flow empty;  // all defaults: proto 0, no names
  for (const Flow& f :
       {start_through_service(), policy_drop(), flow_end(), icmp, icmp_with_id, gre, odd, empty}) {
    json j = to_json(f);
    auto back = flow_from_json(j);
    ASSERT_TRUE(back.ok()) << back.error().str() << "\n" << j.dump();
    EXPECT_EQ(*back, f) << j.dump();
    // And through the text the socket carries.
    auto again = flow_from_json(json::parse(j.dump()));
    ASSERT_TRUE(again.ok()) << again.error().str();
    EXPECT_EQ(*again, f) << j.dump();
  }
  EXPECT_EQ(to_json(icmp).at("l4"), json::parse(R"({"ICMPv4":{"type":8,"code":0}})"));
  EXPECT_EQ(to_json(icmp).at("Summary"),
            "policy prod/deny-dns rule 2 (tier security) denied; ICMPv4 EchoRequest");
  EXPECT_EQ(to_json(icmp_with_id).at("weir").at("source_port"), 4242);
  EXPECT_FALSE(to_json(gre).contains("l4"));
  EXPECT_EQ(to_json(gre).at("weir").at("proto"), 47);
  EXPECT_EQ(to_json(gre).at("traffic_direction"), "TRAFFIC_DIRECTION_UNKNOWN");
  EXPECT_EQ(to_json(odd).at("time"), "1969-12-31T23:59:59.999999999Z");
  EXPECT_EQ(to_json(empty).at("time"), "1970-01-01T00:00:00.000000000Z");
}

TEST(FlowJson, TimesInRfc3339) {
  Flow f;
  f.time_unix_ns = 951782400000000000;  // a leap day
  EXPECT_EQ(to_json(f).at("time"), "2000-02-29T00:00:00.000000000Z");
  // Readers accept protobuf's shorter fractions.
  json j = to_json(f);
  j["time"] = "2026-12-05T14:07:07.123Z";
  auto r = flow_from_json(j);
  ASSERT_TRUE(r.ok()) << r.error().str();
  EXPECT_EQ(r->time_unix_ns, 1796479627123000000);
  j["time"] = "2026-12-05T14:07:07Z";
  r = flow_from_json(j);
  ASSERT_TRUE(r.ok()) << r.error().str();
  EXPECT_EQ(r->time_unix_ns, 1796479627000000000);
  for (const char* bad :
       {"2026-12-05 14:07:07Z", "2026-12-05T14:07:07.123+01:00", "2025-02-29T00:00:00Z",
        "2026-13-01T00:00:00Z", "2026-12-05T24:00:00Z", "2026-12-05T14:07:07.Z",
        "2026-12-05T14:07:07.1234567890Z", "2263-01-01T00:00:00Z", "1600-01-01T00:00:00Z", ""}) {
    j["time"] = bad;
    r = flow_from_json(j);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.error().msg.find("\"time\""), std::string::npos) << r.error().msg;
  }
}

// The error names the field, for each kind of mistake.
TEST(FlowJson, BadJsonNamesTheField) {
  const json good = to_json(policy_drop());
  struct Case {
    const char* pointer;  // JSON pointer to change
    json value;           // nullptr: remove it
    const char* field;    // the field the error must name
  };
  const Case cases[] = {
      {"/time", nullptr, "\"time\" is missing"},
      {"/time", 5, "\"time\""},
      {"/verdict", "ALLOWED", "\"verdict\""},
      {"/verdict", nullptr, "\"verdict\" is missing"},
      {"/IP", nullptr, "\"IP\" is missing"},
      {"/IP/source", "10.0.0.300", "\"IP.source\""},
      {"/IP/destination", nullptr, "\"IP.destination\" is missing"},
      {"/IP/ipVersion", "IPv6", "\"IP.ipVersion\""},
      {"/l4/UDP/destination_port", 70000, "\"l4.UDP.destination_port\""},
      {"/l4/UDP/source_port", -1, "\"l4.UDP.source_port\""},
      {"/l4/UDP/source_port", "53", "\"l4.UDP.source_port\""},
      {"/l4", json::parse(R"({"SCTP":{}})"), "\"l4\""},
      {"/l4", json::parse(R"({"TCP":{"flags":{"SYN":1}}})"), "\"l4.TCP.flags.SYN\""},
      {"/l4", json::parse(R"({"TCP":{"flags":{"NS":true}}})"), "\"l4.TCP.flags.NS\""},
      {"/l4", json::parse(R"({"ICMPv4":{"type":300,"code":0}})"), "\"l4.ICMPv4.type\""},
      {"/source", "pod1", "\"source\""},
      {"/destination/pod_name", 3, "\"destination.pod_name\""},
      {"/destination_service", json::parse(R"({"name":7})"), "\"destination_service.name\""},
      {"/traffic_direction", "UP", "\"traffic_direction\""},
      {"/policy_match_type", -2, "\"policy_match_type\""},
      {"/interface/index", "7", "\"interface.index\""},
      {"/node_name", false, "\"node_name\""},
      {"/weir", nullptr, "\"weir\" is missing"},
      {"/weir/event", "flow_middle", "\"weir.event\""},
      {"/weir/event", nullptr, "\"weir.event\" is missing"},
      {"/weir/policy/rule_index", -5, "\"weir.policy.rule_index\""},
      {"/weir/translated", json::parse(R"({"port":1})"), "\"weir.translated.ip\" is missing"},
      {"/weir/bytes_sent", -1, "\"weir.bytes_sent\""},
      {"/weir/close_reason", 1, "\"weir.close_reason\""},
  };
  for (const auto& c : cases) {
    json j = good;
    const json::json_pointer p(c.pointer);
    if (c.value.is_null())
      j.at(p.parent_pointer()).erase(p.back());
    else
      j[p] = c.value;
    auto r = flow_from_json(j);
    ASSERT_FALSE(r.ok()) << c.pointer << " = " << c.value.dump();
    EXPECT_NE(r.error().msg.find(c.field), std::string::npos) << c.pointer << ": " << r.error().msg;
  }
  // A flow without l4 needs weir.proto.
  json j = good;
  j.erase("l4");
  auto r = flow_from_json(j);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().msg.find("\"weir.proto\" is missing"), std::string::npos) << r.error().msg;
  EXPECT_FALSE(flow_from_json(json::array()).ok());
}

TEST(FlowJson, ReaderIgnoresDerivedAndUnknownFields) {
  json j = to_json(policy_drop());
  j["Summary"] = "anything";
  j["drop_reason_desc"] = "NO_SUCH_REASON";
  j["uuid"] = "0b2c";
  j["ingress_denied_by"] = "not even a list";
  auto r = flow_from_json(j);
  ASSERT_TRUE(r.ok()) << r.error().str();
  EXPECT_EQ(*r, policy_drop());
}

TEST(FlowJson, EnumNames) {
  EXPECT_STREQ(to_string(FlowEvent::Start), "flow_start");
  EXPECT_STREQ(to_string(FlowEvent::End), "flow_end");
  EXPECT_STREQ(to_string(FlowEvent::Drop), "drop");
  EXPECT_STREQ(to_string(FlowVerdict::Forwarded), "FORWARDED");
  EXPECT_STREQ(to_string(FlowVerdict::Dropped), "DROPPED");
  EXPECT_STREQ(to_string(TrafficDirection::Ingress), "INGRESS");
  EXPECT_STREQ(to_string(TrafficDirection::Egress), "EGRESS");
  EXPECT_STREQ(to_string(TrafficDirection::Unknown), "");
}

}  // namespace
}  // namespace weir::model
