// bpf/netlink.h, the one rtnetlink client: a kernel error carries the errno, the caller's
// context and the kernel's extended ack message. Runs in the test binary's private network
// namespace (netns_env.h).
#include <gtest/gtest.h>
#include <linux/if_link.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "bpf/netlink.h"
#include "netns_env.h"

namespace weir::netlink_test {
namespace {

// A nested attribute holding one string attribute.
std::vector<char> nested_string(uint16_t type, const std::string& s) {
  std::vector<char> out(RTA_SPACE(s.size() + 1), 0);
  auto* a = reinterpret_cast<struct rtattr*>(out.data());
  a->rta_type = type;
  a->rta_len = static_cast<unsigned short>(RTA_LENGTH(s.size() + 1));
  std::memcpy(RTA_DATA(a), s.c_str(), s.size() + 1);
  return out;
}

TEST(Netlink, KernelErrorCarriesErrnoContextAndExtendedAck) {
  ASSERT_TRUE(test::topology().ready) << test::topology().error;
  auto nl = bpf::Netlink::open();
  ASSERT_TRUE(nl.ok()) << nl.error().str();
  // A link of a kind no kernel has: rtnetlink refuses it with EOPNOTSUPP and an ext ack message.
  struct ifinfomsg ifi {};
  ifi.ifi_family = AF_UNSPEC;
  bpf::NlMsg m(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof(ifi));
  m.add_attr(IFLA_IFNAME, "weirbad0");
  auto info = nested_string(IFLA_INFO_KIND, "weirnosuchkind");
  m.add_attr(IFLA_LINKINFO, info.data(), info.size());
  auto st = nl->request(m, false, [](const struct nlmsghdr*) {}, "creating link weirbad0");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().err, EOPNOTSUPP) << st.error().str();
  EXPECT_EQ(st.error().msg.rfind("creating link weirbad0: Unknown device type", 0), 0u)
      << st.error().msg;
}

TEST(Netlink, LinksOfTheNamespace) {
  ASSERT_TRUE(test::topology().ready) << test::topology().error;
  auto l = bpf::link_by_index(static_cast<int>(test::topology().client_if));
  ASSERT_TRUE(l.ok()) << l.error().str();
  EXPECT_EQ(l->kind, "veth");
  auto by_name = bpf::link_by_name(l->name);
  ASSERT_TRUE(by_name.ok()) << by_name.error().str();
  EXPECT_EQ(by_name->ifindex, l->ifindex);
  EXPECT_EQ(by_name->mac, l->mac);
  EXPECT_NE(l->mac, (std::array<uint8_t, 6>{})) << "a veth has an Ethernet address";
  auto lo = bpf::link_by_name("lo");
  ASSERT_TRUE(lo.ok()) << lo.error().str();
  EXPECT_EQ(lo->kind, "");
  auto missing = bpf::link_by_index(99999);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().err, ENODEV);
  EXPECT_EQ(missing.error().msg, "no network interface with ifindex 99999 in this namespace");
}

}  // namespace
}  // namespace weir::netlink_test
