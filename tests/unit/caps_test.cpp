// bpf/caps: capability names, the effective set of /proc/<pid>/status, and what the agent needs.
#include "bpf/caps.h"

#include <gtest/gtest.h>
#include <linux/capability.h>

namespace weir::caps {
namespace {

uint64_t set_of(std::initializer_list<int> caps) {
  uint64_t s = 0;
  for (int c : caps) s |= uint64_t{1} << c;
  return s;
}

TEST(Caps, NamesBothWays) {
  EXPECT_EQ(from_name("CAP_PERFMON"), CAP_PERFMON);
  EXPECT_EQ(from_name("cap_perfmon"), CAP_PERFMON);
  EXPECT_EQ(from_name("perfmon"), CAP_PERFMON);
  EXPECT_EQ(from_name("CAP_BPF"), CAP_BPF);
  EXPECT_EQ(from_name("sys_admin"), CAP_SYS_ADMIN);
  EXPECT_EQ(from_name("CAP_CHOWN"), 0);
  EXPECT_FALSE(from_name("CAP_"));
  EXPECT_FALSE(from_name("CAP_PERFMONX"));
  EXPECT_FALSE(from_name(""));
  EXPECT_EQ(name(CAP_PERFMON), "CAP_PERFMON");
  EXPECT_EQ(name(CAP_NET_ADMIN), "CAP_NET_ADMIN");
  EXPECT_EQ(name(45), "capability 45");
  for (int c = 0; c <= CAP_LAST_CAP; ++c) EXPECT_EQ(from_name(name(c)), c) << c;
}

TEST(Caps, EffectiveSetOfAStatusFile) {
  auto eff = effective_in_status("Name:\tweir\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\n"
                                 "CapEff:\t000000bfffffffff\nCapBnd:\t000001ffffffffff\n");
  ASSERT_TRUE(eff.ok()) << eff.error().str();
  EXPECT_EQ(*eff, 0xbfffffffffULL);
  EXPECT_FALSE(has(*eff, CAP_PERFMON));
  EXPECT_TRUE(has(*eff, CAP_BPF));
  auto bad = effective_in_status("CapEff:\tnothex\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().str().find("nothex"), std::string::npos) << bad.error().str();
  auto none = effective_in_status("Name:\tweir\n");
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.error().str().find("CapEff"), std::string::npos);
}

TEST(Caps, ThisProcessHasAnEffectiveSet) {
  auto eff = effective();
  ASSERT_TRUE(eff.ok()) << eff.error().str();
  auto mine = effective(::getpid());
  ASSERT_TRUE(mine.ok()) << mine.error().str();
  EXPECT_EQ(*eff, *mine);
  EXPECT_FALSE(effective(-5).ok());
}

TEST(Caps, WhatTheAgentLacks) {
  EXPECT_TRUE(missing_for_agent(set_of({CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN})).empty());
  EXPECT_TRUE(missing_for_agent(set_of({CAP_SYS_ADMIN, CAP_NET_ADMIN})).empty()) << "CAP_SYS_ADMIN covers both";
  EXPECT_EQ(missing_for_agent(set_of({CAP_BPF, CAP_NET_ADMIN})),
            std::vector<std::string>{"CAP_PERFMON (or CAP_SYS_ADMIN)"});
  EXPECT_EQ(missing_for_agent(set_of({CAP_SYS_ADMIN})), std::vector<std::string>{"CAP_NET_ADMIN"});
  EXPECT_EQ(missing_for_agent(0), (std::vector<std::string>{"CAP_BPF (or CAP_SYS_ADMIN)",
                                                            "CAP_PERFMON (or CAP_SYS_ADMIN)", "CAP_NET_ADMIN"}));
}

}  // namespace
}  // namespace weir::caps
