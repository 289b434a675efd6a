// `weir observe`'s filters and request (src/calc/flow_filter.h): strict parsing with errors
// naming the option, matching field by field, the request's JSON. No root needed.
#include "calc/flow_filter.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace weir::calc {
namespace {

using model::Flow;
using model::FlowVerdict;
using nlohmann::json;

model::Ipv4 ip(const char* s) { return *model::Ipv4::parse(s); }

// pod1 (10.65.0.2:40000) to the service default/web (10.96.0.10:80), NATed to pod2
// (10.65.0.3:8080).
Flow nat_flow() {
  Flow f;
  f.proto = 6;
  f.verdict = FlowVerdict::Forwarded;
  f.source = {ip("10.65.0.2"), 40000, "default", "pod1", "", ""};
  f.destination = {ip("10.96.0.10"), 80, "", "", "default", "web"};
  f.translated = model::FlowPeer{ip("10.65.0.3"), 8080, "default", "pod2", "", ""};
  return f;
}

FlowFilter parse(const FlowFilterArgs& a) {
  auto f = parse_flow_filter(a);
  EXPECT_TRUE(f.ok()) << f.error().str();
  return f.ok() ? *f : FlowFilter{};
}

std::string parse_error(const FlowFilterArgs& a) {
  auto f = parse_flow_filter(a);
  EXPECT_FALSE(f.ok());
  return f.ok() ? "" : f.error().msg;
}

TEST(FlowFilterParse, EmptyArgsGiveEmptyFilter) { EXPECT_EQ(parse({}), FlowFilter{}); }

TEST(FlowFilterParse, EachOption) {
  FlowFilter f = parse(
      {"default/pod1", "10.65.0.0/16", "10.96.0.10", "8080", "TCP", "Dropped", "kube-system/dns"});
  EXPECT_EQ(f.pod, (NsName{"default", "pod1"}));
  EXPECT_EQ(f.from_ip, (model::Cidr{ip("10.65.0.0"), 16}));
  EXPECT_EQ(f.to_ip, (model::Cidr{ip("10.96.0.10"), 32}));
  EXPECT_EQ(f.port, uint16_t{8080});
  EXPECT_EQ(f.proto, uint8_t{6});
  EXPECT_EQ(f.verdict, FlowVerdict::Dropped);
  EXPECT_EQ(f.service, (NsName{"kube-system", "dns"}));
  EXPECT_EQ(parse({.proto = "udp"}).proto, uint8_t{17});
  EXPECT_EQ(parse({.proto = "icmp"}).proto, uint8_t{1});
  EXPECT_EQ(parse({.verdict = "forwarded"}).verdict, FlowVerdict::Forwarded);
  // Host bits are cleared.
  EXPECT_EQ(parse({.to_ip = "10.0.0.5/24"}).to_ip, (model::Cidr{ip("10.0.0.0"), 24}));
  EXPECT_EQ(parse({.from_ip = "0.0.0.0/0"}).from_ip, (model::Cidr{ip("0.0.0.0"), 0}));
  EXPECT_EQ(parse({.port = "65535"}).port, uint16_t{65535});
}

TEST(FlowFilterParse, ErrorsNameOptionAndValue) {
  EXPECT_EQ(parse_error({.pod = "default"}), "--pod default: expected NAMESPACE/NAME");
  EXPECT_EQ(parse_error({.pod = "default/"}), "--pod default/: expected NAMESPACE/NAME");
  EXPECT_EQ(parse_error({.pod = "/pod1"}), "--pod /pod1: expected NAMESPACE/NAME");
  EXPECT_EQ(parse_error({.pod = "a/b/c"}), "--pod a/b/c: expected NAMESPACE/NAME");
  EXPECT_EQ(parse_error({.pod = "a/b c"}), "--pod a/b c: expected NAMESPACE/NAME");
  EXPECT_EQ(parse_error({.service = "web"}), "--service web: expected NAMESPACE/NAME");
  EXPECT_EQ(parse_error({.port = "0"}), "--port 0: a port is 1..65535");
  EXPECT_EQ(parse_error({.port = "65536"}), "--port 65536: a port is 1..65535");
  EXPECT_EQ(parse_error({.port = "http"}), "--port http: a port is 1..65535");
  EXPECT_EQ(parse_error({.port = "80x"}), "--port 80x: a port is 1..65535");
  EXPECT_EQ(parse_error({.port = "-1"}), "--port -1: a port is 1..65535");
  EXPECT_EQ(parse_error({.proto = "sctp"}), "--proto sctp: expected tcp, udp or icmp");
  EXPECT_EQ(parse_error({.verdict = "denied"}), "--verdict denied: expected forwarded or dropped");
  const std::string cidr = ": expected an IPv4 address or CIDR (a.b.c.d or a.b.c.d/n, n 0..32)";
  EXPECT_EQ(parse_error({.from_ip = "10.0.0.300"}), "--from-ip 10.0.0.300" + cidr);
  EXPECT_EQ(parse_error({.from_ip = "10.0.0.0/33"}), "--from-ip 10.0.0.0/33" + cidr);
  EXPECT_EQ(parse_error({.from_ip = "10.0.0.0/"}), "--from-ip 10.0.0.0/" + cidr);
  EXPECT_EQ(parse_error({.to_ip = "10.0.0.0/8/8"}), "--to-ip 10.0.0.0/8/8" + cidr);
  EXPECT_EQ(parse_error({.to_ip = "fd00::1"}), "--to-ip fd00::1" + cidr);
  // The first bad option is named, even when a later one is fine.
  EXPECT_EQ(parse_error({.pod = "x", .port = "80"}), "--pod x: expected NAMESPACE/NAME");
}

TEST(FlowFilterMatch, EmptyMatchesEverything) {
  EXPECT_TRUE(FlowFilter{}.matches(nat_flow()));
  EXPECT_TRUE(FlowFilter{}.matches(Flow{}));
}

TEST(FlowFilterMatch, Pod) {
  const Flow f = nat_flow();
  EXPECT_TRUE(parse({.pod = "default/pod1"}).matches(f));  // source
  EXPECT_TRUE(parse({.pod = "default/pod2"}).matches(f));  // translated backend
  EXPECT_FALSE(parse({.pod = "default/pod3"}).matches(f));
  EXPECT_FALSE(parse({.pod = "other/pod1"}).matches(f));  // same name, another namespace
  Flow direct = f;
  direct.translated.reset();
  direct.destination = {ip("10.65.0.4"), 80, "prod", "pod4", "", ""};
  EXPECT_TRUE(parse({.pod = "prod/pod4"}).matches(direct));  // destination
  EXPECT_FALSE(parse({.pod = "default/pod2"}).matches(direct));
}

TEST(FlowFilterMatch, FromIp) {
  const Flow f = nat_flow();
  EXPECT_TRUE(parse({.from_ip = "10.65.0.2"}).matches(f));
  EXPECT_TRUE(parse({.from_ip = "10.65.0.0/24"}).matches(f));
  EXPECT_FALSE(parse({.from_ip = "10.65.0.3"}).matches(f));   // the backend is no source
  EXPECT_FALSE(parse({.from_ip = "10.96.0.10"}).matches(f));  // nor the destination
}

TEST(FlowFilterMatch, ToIp) {
  const Flow f = nat_flow();
  EXPECT_TRUE(parse({.to_ip = "10.96.0.10"}).matches(f));    // the VIP
  EXPECT_TRUE(parse({.to_ip = "10.65.0.3/32"}).matches(f));  // the backend
  EXPECT_FALSE(parse({.to_ip = "10.65.0.2"}).matches(f));    // the source is not a destination
  Flow direct = f;
  direct.translated.reset();
  EXPECT_FALSE(parse({.to_ip = "10.65.0.3"}).matches(direct));
}

TEST(FlowFilterMatch, Port) {
  const Flow f = nat_flow();
  EXPECT_TRUE(parse({.port = "40000"}).matches(f));
  EXPECT_TRUE(parse({.port = "80"}).matches(f));
  EXPECT_TRUE(parse({.port = "8080"}).matches(f));
  EXPECT_FALSE(parse({.port = "443"}).matches(f));
}

TEST(FlowFilterMatch, ProtoAndVerdict) {
  Flow f = nat_flow();
  EXPECT_TRUE(parse({.proto = "tcp"}).matches(f));
  EXPECT_FALSE(parse({.proto = "udp"}).matches(f));
  EXPECT_FALSE(parse({.proto = "icmp"}).matches(f));
  EXPECT_TRUE(parse({.verdict = "forwarded"}).matches(f));
  EXPECT_FALSE(parse({.verdict = "dropped"}).matches(f));
  f.verdict = FlowVerdict::Dropped;
  EXPECT_TRUE(parse({.verdict = "dropped"}).matches(f));
}

TEST(FlowFilterMatch, Service) {
  const Flow f = nat_flow();
  EXPECT_TRUE(parse({.service = "default/web"}).matches(f));
  EXPECT_FALSE(parse({.service = "default/api"}).matches(f));
  EXPECT_FALSE(parse({.service = "prod/web"}).matches(f));
  Flow reply = f;  // a service as the source is no match: the destination is the service
  std::swap(reply.source, reply.destination);
  EXPECT_FALSE(parse({.service = "default/web"}).matches(reply));
}

TEST(FlowFilterMatch, EveryFieldGivenMustMatch) {
  const Flow f = nat_flow();
  const FlowFilterArgs all{"default/pod1", "10.65.0.0/24", "10.65.0.3",  "8080",
                           "tcp",          "forwarded",    "default/web"};
  EXPECT_TRUE(parse(all).matches(f));
  // Each field failing alone fails the whole filter.
  FlowFilterArgs a = all;
  a.pod = "default/nope";
  EXPECT_FALSE(parse(a).matches(f));
  a = all;
  a.from_ip = "10.66.0.0/16";
  EXPECT_FALSE(parse(a).matches(f));
  a = all;
  a.to_ip = "10.0.0.1";
  EXPECT_FALSE(parse(a).matches(f));
  a = all;
  a.port = "1";
  EXPECT_FALSE(parse(a).matches(f));
  a = all;
  a.proto = "udp";
  EXPECT_FALSE(parse(a).matches(f));
  a = all;
  a.verdict = "dropped";
  EXPECT_FALSE(parse(a).matches(f));
  a = all;
  a.service = "default/other";
  EXPECT_FALSE(parse(a).matches(f));
}

TEST(ObserveRequestJson, RoundTrip) {
  ObserveRequest r;
  r.last = 50;
  r.follow = true;
  r.filter = parse(
      {"default/pod1", "10.65.0.0/16", "10.96.0.10", "8080", "icmp", "dropped", "kube-system/dns"});
  json j = to_json(r);
  EXPECT_EQ(j, json::parse(R"({"last":50,"follow":true,"filter":{"pod":"default/pod1",
      "from_ip":"10.65.0.0/16","to_ip":"10.96.0.10/32","port":"8080","proto":"icmp",
      "verdict":"dropped","service":"kube-system/dns"}})"));
  auto back = observe_request_from_json(json::parse(j.dump()));
  ASSERT_TRUE(back.ok()) << back.error().str();
  EXPECT_EQ(*back, r);

  ObserveRequest plain;
  plain.last = 20;
  EXPECT_EQ(to_json(plain), json::parse(R"({"last":20,"follow":false,"filter":{}})"));
  back = observe_request_from_json(to_json(plain));
  ASSERT_TRUE(back.ok()) << back.error().str();
  EXPECT_EQ(*back, plain);
  for (const char* p : {"tcp", "udp"}) {
    ObserveRequest q;
    q.filter = parse({.proto = p});
    back = observe_request_from_json(to_json(q));
    ASSERT_TRUE(back.ok()) << back.error().str();
    EXPECT_EQ(*back, q) << p;
  }
  // Absent fields take their defaults.
  back = observe_request_from_json(json::object());
  ASSERT_TRUE(back.ok()) << back.error().str();
  EXPECT_EQ(*back, ObserveRequest{});
}

TEST(ObserveRequestJson, ErrorsNameTheField) {
  const std::pair<const char*, const char*> cases[] = {
      {R"([])", "a JSON object"},
      {R"({"last":-1})", "request field \"last\""},
      {R"({"last":"20"})", "request field \"last\""},
      {R"({"follow":1})", "request field \"follow\""},
      {R"({"filter":[]})", "request field \"filter\""},
      {R"({"filter":{"pod":"default"}})", "request: filter.pod default: expected NAMESPACE/NAME"},
      {R"({"filter":{"port":"0"}})", "request: filter.port 0: a port is 1..65535"},
      {R"({"filter":{"port":80}})", "request field \"filter.port\": expected a non-empty string"},
      {R"({"filter":{"proto":"sctp"}})", "filter.proto sctp: expected tcp, udp or icmp"},
      {R"({"filter":{"from_ip":"10.0.0.300"}})", "filter.from_ip 10.0.0.300: expected an IPv4"},
      {R"({"filter":{"to_ip":""}})", "request field \"filter.to_ip\""},
      {R"({"filter":{"verdict":"x"}})", "filter.verdict x: expected forwarded or dropped"},
      {R"({"filter":{"service":"a/b/c"}})", "filter.service a/b/c"},
      {R"({"filter":{"label":"app=web"}})", "request field \"filter.label\": unknown"},
      {R"({"since":"1m"})", "request field \"since\": unknown"},
  };
  for (const auto& [text, want] : cases) {
    auto r = observe_request_from_json(json::parse(text));
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_NE(r.error().msg.find(want), std::string::npos) << text << ": " << r.error().msg;
  }
}

}  // namespace
}  // namespace weir::calc
