// `weir observe`'s table (src/cli/format.h: format_flow_*). No root needed.
#include <gtest/gtest.h>

#include "cli/format.h"

namespace weir::cli {
namespace {

using model::Flow;
using model::FlowEvent;
using model::FlowPeer;
using model::FlowVerdict;

model::Ipv4 ip(const char* s) { return *model::Ipv4::parse(s); }

// 2026-12-05T14:07:07.123456789Z
constexpr int64_t kTime = 1796479627123456789;

Flow nat_start() {
  Flow f;
  f.time_unix_ns = kTime;
  f.proto = 6;
  f.tcp_flags = 0x02;
  f.source = {ip("10.65.0.2"), 40000, "default", "pod1", "", ""};
  f.destination = {ip("10.96.0.10"), 80, "", "", "default", "web"};
  f.translated = FlowPeer{ip("10.65.0.3"), 8080, "default", "pod2", "", ""};
  return f;
}

TEST(ObserveFormat, Time) {
  EXPECT_EQ(format_flow_time(kTime), "Dec  5 14:07:07.123");
  EXPECT_EQ(format_flow_time(1796479627999999999 + 14LL * 86400 * 1000000000),
            "Dec 19 14:07:07.999");
  EXPECT_EQ(format_flow_time(0), "Jan  1 00:00:00.000");
  EXPECT_EQ(format_flow_time(-1), "Dec 31 23:59:59.999");
}

TEST(ObserveFormat, Peer) {
  EXPECT_EQ(format_flow_peer({ip("10.65.0.2"), 40000, "default", "pod1", "", ""}),
            "default/pod1:40000");
  EXPECT_EQ(format_flow_peer({ip("10.0.0.9"), 53, "", "", "", ""}), "10.0.0.9:53");
  EXPECT_EQ(format_flow_peer({ip("10.65.0.2"), 0, "", "", "", ""}), "10.65.0.2");  // ICMP
  EXPECT_EQ(format_flow_peer({ip("10.65.0.2"), 0, "default", "pod1", "", ""}), "default/pod1");
}

TEST(ObserveFormat, StartThroughService) {
  EXPECT_EQ(flow_row(nat_start()),
            (std::vector<std::string>{"Dec  5 14:07:07.123", "default/pod1:40000",
                                      "svc default/web:80 -> default/pod2:8080", "flow_start TCP",
                                      "FORWARDED", "TCP Flags: SYN"}));
  // Fixed columns: TIME 19, SOURCE 26, DESTINATION 44, TYPE 16, VERDICT 9, two spaces between.
  EXPECT_EQ(format_flow_line(nat_start()),
            "Dec  5 14:07:07.123  default/pod1:40000          "
            "svc default/web:80 -> default/pod2:8080       flow_start TCP    FORWARDED  "
            "TCP Flags: SYN\n");
  EXPECT_EQ(format_flow_header(),
            "TIME                 SOURCE                      DESTINATION                          "
            "         TYPE              VERDICT    SUMMARY\n");
}

TEST(ObserveFormat, PolicyDrop) {
  Flow f;
  f.time_unix_ns = kTime;
  f.event = FlowEvent::Drop;
  f.verdict = FlowVerdict::Dropped;
  f.proto = 17;
  f.source = {ip("10.65.0.2"), 5353, "default", "pod1", "", ""};
  f.destination = {ip("10.65.0.4"), 53, "", "", "", ""};
  f.drop_reason = "dropped_by_policy";
  f.drop_reason_text = "by policy";
  f.policy = {"default", "default/deny-all", -1, "deny", 0};
  auto row = flow_row(f);
  EXPECT_EQ(row.at(2), "10.65.0.4:53");
  EXPECT_EQ(row.at(3), "drop UDP");
  EXPECT_EQ(row.at(4), "DROPPED");
  EXPECT_EQ(row.at(5), "policy default/deny-all (tier default) denied; UDP");
  // A cell wider than its column pushes the rest right, two spaces after it.
  f.source.pod = "a-pod-with-a-very-long-name-indeed";
  EXPECT_EQ(format_flow_line(f).substr(21, 50),
            "default/a-pod-with-a-very-long-name-indeed:5353  1");
}

TEST(ObserveFormat, NonPolicyDropAndIcmp) {
  Flow f;
  f.time_unix_ns = kTime;
  f.event = FlowEvent::Drop;
  f.verdict = FlowVerdict::Dropped;
  f.proto = 1;
  f.icmp_type = 8;
  f.source = {ip("10.65.0.2"), 0, "", "", "", ""};
  f.destination = {ip("10.96.0.11"), 0, "", "", "default", "empty"};
  f.drop_reason = "dropped_no_backend";
  f.drop_reason_text = "service without backends";
  auto row = flow_row(f);
  EXPECT_EQ(row.at(1), "10.65.0.2");
  EXPECT_EQ(row.at(2), "svc default/empty");
  EXPECT_EQ(row.at(3), "drop ICMP");
  EXPECT_EQ(row.at(5), "service without backends; ICMPv4 EchoRequest");
}

TEST(ObserveFormat, FlowEnd) {
  Flow f = nat_start();
  f.event = FlowEvent::End;
  f.tcp_flags = 0;
  f.packets_sent = 6;
  f.bytes_sent = 520;
  f.packets_received = 4;
  f.bytes_received = 3000;
  f.duration_ns = 90000000000;
  f.close_reason = "idle timeout";
  auto row = flow_row(f);
  EXPECT_EQ(row.at(3), "flow_end TCP");
  EXPECT_EQ(row.at(5),
            "TCP flow ended (idle timeout) after 1m30s: sent 6 packets 520 bytes, "
            "received 4 packets 3000 bytes");
}

}  // namespace
}  // namespace weir::cli
