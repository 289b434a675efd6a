// calc::parse_trace_line: weir's log lines among everything the kernel trace buffer holds.
#include <gtest/gtest.h>

#include "calc/tracelog.h"

namespace weir::calc {
namespace {

TEST(TraceLine, ParsesALineOfTheLogVariant) {
  auto t = parse_trace_line(
      "  weir_bpf_tests-12847   [000] b..11  3409.077921: bpf_trace_printk: wl12847x0---E: Final result=REDIRECT (7). "
      "Program execution time: 36539ns");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->task, "weir_bpf_tests-12847");
  EXPECT_EQ(t->cpu, 0);
  EXPECT_EQ(t->time, "3409.077921");
  EXPECT_EQ(t->iface, "wl12847x0");
  EXPECT_EQ(t->dir, 'E');
  EXPECT_EQ(t->message, "Final result=REDIRECT (7). Program execution time: 36539ns");
}

TEST(TraceLine, ParsesTheSeedsOlderFormatAndTaskNamesWithSpacesAndDashes) {
  // The seed's line (older kernels print "0:" where newer ones print "bpf_trace_printk:").
  auto t = parse_trace_line("<...>-84582 [000] .Ns1 6851.690474: 0: ens192---E: Final result=ALLOW (-1). Program "
                            "execution time: 7366ns");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->task, "<...>-84582");
  EXPECT_EQ(t->iface, "ens192");
  EXPECT_EQ(t->dir, 'E');
  EXPECT_EQ(t->message, "Final result=ALLOW (-1). Program execution time: 7366ns");
  auto u = parse_trace_line("   kworker/u4:2-net-3 [013] ..s2.   12.5: bpf_trace_printk: if12---I: CT: miss");
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->task, "kworker/u4:2-net-3");
  EXPECT_EQ(u->cpu, 13);
  EXPECT_EQ(u->iface, "if12");
  EXPECT_EQ(u->dir, 'I');
  EXPECT_EQ(u->message, "CT: miss");
}

TEST(TraceLine, EverythingElseIsNotAWeirLine) {
  for (const char* line : {
           "# tracer: nop",
           "#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION",
           "",
           "  curl-1 [001] d..1 1.000: bpf_trace_printk: hello from another program",
           "  curl-1 [001] d..1 1.000: bpf_trace_printk: eth0---Q: not a direction",
           "  curl-1 [001] d..1 1.000: bpf_trace_printk: ---E: no interface",
           "  curl-1 [001] d..1 1.000: bpf_trace_printk: a b---E: a space in the name",
           "  curl-1 [x] d..1 1.000: bpf_trace_printk: eth0---E: bad cpu",
           "  curl-1 [001] d..1 1.000",
           "  curl-1 [001] d..1 nottime: bpf_trace_printk: eth0---E: x",
           "  curl-1 [001] d..1 1.000: bpf_trace_printk: eth0---E:",
       }) {
    EXPECT_FALSE(parse_trace_line(line).has_value()) << line;
  }
}

}  // namespace
}  // namespace weir::calc
