// Programs built with the runtime assembler (src/polprog) go through the kernel verifier as
// BPF_PROG_TYPE_SCHED_CLS and run under BPF_PROG_TEST_RUN: the encodings are not only what we
// computed by hand (unit tests) but what the kernel accepts and executes. Needs root (CAP_BPF,
// CAP_NET_ADMIN): a missing privilege fails the load, and the tests with it.
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include <cerrno>
#include <cstddef>
#include <string>
#include <vector>

#include "packet.h"
#include "polprog/asm.h"
#include "prog_load.h"
#include "polprog/disasm.h"
#include "util/fd.h"
#include "util/result.h"

namespace weir::polprog {
namespace {

using test::Bytes;

// Loads `prog` as a TC classifier (test::load_sched_cls).
Result<Fd> load(const Program& prog, const char* name) { return test::load_sched_cls(prog, name, name); }

// Runs the program once on `pkt` (no ctx: the kernel fills an __sk_buff) and returns r0.
Result<uint32_t> run(const Fd& prog, const Bytes& pkt) { return test::run_once(prog, pkt); }

Bytes tcp_packet(uint16_t dport) {
  test::PacketSpec s;
  s.ip.saddr = test::ip4("10.0.0.1");
  s.ip.daddr = test::ip4("10.0.0.2");
  test::TcpSpec tcp;
  tcp.sport = 40000;
  tcp.dport = dport;
  tcp.flags = test::kTcpSyn;
  s.l4 = tcp;
  return test::build(s);
}

Bytes arp_packet() {
  test::PacketSpec s;
  s.eth.type = test::kEthArp;
  s.raw_l3 = Bytes(28, 0);
  return test::build(s);
}

// Loads the packet pointers of the __sk_buff in r1 into data/data_end registers.
void load_packet_pointers(Assembler& a, Reg ctx, Reg data, Reg data_end) {
  a.ldx(Size::U32, data, ctx, offsetof(__sk_buff, data));
  a.ldx(Size::U32, data_end, ctx, offsetof(__sk_buff, data_end));
}

TEST(PolprogLoad, ConstantReturn) {
  Assembler a("const");
  a.mov(R0, TC_ACT_SHOT);
  a.exit();
  auto prog = a.assemble();
  ASSERT_TRUE(prog.ok()) << prog.error().str();
  auto fd = load(*prog, "weir_pp_const");
  ASSERT_TRUE(fd.ok()) << fd.error().str();
  auto rv = run(*fd, tcp_packet(80));
  ASSERT_TRUE(rv.ok()) << rv.error().str();
  EXPECT_EQ(*rv, uint32_t(TC_ACT_SHOT));
}

// A bounded loop (backward jump) and forward branches on packet bytes.
TEST(PolprogLoad, ForwardAndBackwardJumps) {
  Assembler a("loop");
  Label loop = a.new_label("loop");
  Label too_short = a.new_label("too_short");
  Label not_ipv4 = a.new_label("not_ipv4");
  load_packet_pointers(a, R1, R2, R3);
  a.mov(R4, R2);
  a.add(R4, 14);
  a.jgt(R4, R3, too_short);      // bounds check before reading the Ethernet header
  a.ldx(Size::U16, R5, R2, 12);  // ethertype, network order
  a.be16(R5);
  a.jne32(R5, 0x0800, not_ipv4);
  // r0 = 3 * 10 with a counted loop: the verifier accepts bounded loops (5.3+).
  a.mov(R0, 0);
  a.mov(R6, 10);
  a.bind(loop);
  a.add(R0, 3);
  a.sub(R6, 1);
  a.jne(R6, 0, loop);  // backward
  a.exit();
  a.bind(not_ipv4);
  a.mov(R0, 100);
  a.exit();
  a.bind(too_short);
  a.mov(R0, 200);
  a.exit();
  auto prog = a.assemble();
  ASSERT_TRUE(prog.ok()) << prog.error().str();
  auto fd = load(*prog, "weir_pp_loop");
  ASSERT_TRUE(fd.ok()) << fd.error().str();

  auto v4 = run(*fd, tcp_packet(80));
  ASSERT_TRUE(v4.ok()) << v4.error().str();
  EXPECT_EQ(*v4, 30u);
  auto arp = run(*fd, arp_packet());
  ASSERT_TRUE(arp.ok()) << arp.error().str();
  EXPECT_EQ(*arp, 100u);
}

// Rules matching the TCP destination port, one after the other, like a policy program: with
// thousands of rules the jumps to the common "deny" exit are long.
TEST(PolprogLoad, ManyRulesWithLongJumps) {
  constexpr int kRules = 2000;
  Assembler a("rules");
  Label deny = a.new_label("deny");
  load_packet_pointers(a, R1, R2, R3);
  a.mov(R4, R2);
  a.add(R4, 14 + 20 + 4);
  a.jgt(R4, R3, deny);
  a.ldx(Size::U8, R5, R2, 14 + 9);  // IP protocol
  a.jne32(R5, 6, deny);
  a.ldx(Size::U16, R6, R2, 14 + 20 + 2);  // TCP destination port
  a.be16(R6);
  Label done = a.new_label("done");
  for (int i = 0; i < kRules; i++) {
    Label next = a.new_label(fmt::format("rule{}_next", i));
    a.comment(fmt::format("rule {}: dst port {}", i, 1000 + i));
    a.jne32(R6, 1000 + i, next);
    a.mov(R0, 10000 + i);
    a.ja(done);  // forward over all the remaining rules
    a.bind(next);
  }
  a.mov(R0, 1);  // no rule matched
  a.exit();
  a.bind(deny);
  a.mov(R0, 2);
  a.exit();
  a.bind(done);
  a.exit();
  auto prog = a.assemble();
  ASSERT_TRUE(prog.ok()) << prog.error().str();
  ASSERT_GT(prog->insns.size(), 6000u);
  auto fd = load(*prog, "weir_pp_rules");
  ASSERT_TRUE(fd.ok()) << fd.error().str();

  for (int port : {1000, 1001, 2500, 2999}) {
    auto rv = run(*fd, tcp_packet(static_cast<uint16_t>(port)));
    ASSERT_TRUE(rv.ok()) << rv.error().str();
    EXPECT_EQ(*rv, uint32_t(10000 + port - 1000)) << "port " << port;
  }
  auto none = run(*fd, tcp_packet(80));
  ASSERT_TRUE(none.ok()) << none.error().str();
  EXPECT_EQ(*none, 1u);
  auto arp = run(*fd, arp_packet());
  ASSERT_TRUE(arp.ok()) << arp.error().str();
  EXPECT_EQ(*arp, 2u);
}

TEST(PolprogLoad, MapLookupThroughRelocatedMapRef) {
  Fd map(bpf_map_create(BPF_MAP_TYPE_HASH, "weir_pp_test", sizeof(uint32_t), sizeof(uint64_t), 16,
                        nullptr));
  ASSERT_TRUE(map.valid()) << Error{errno, "bpf_map_create"}.str();
  uint32_t key = 7;
  uint64_t value = 0x1234;
  ASSERT_EQ(bpf_map_update_elem(map.get(), &key, &value, BPF_ANY), 0)
      << Error{errno, "bpf_map_update_elem"}.str();

  const MapRef kValues{"values"};
  Assembler a("lookup");
  Label miss = a.new_label("miss");
  a.st(Size::U32, R10, -4, 7);  // key on the stack
  a.mov(R2, R10);
  a.add(R2, -4);
  a.ld_map_fd(R1, kValues);
  a.call(BPF_FUNC_map_lookup_elem);
  a.jeq(R0, 0, miss);
  a.mov(R1, 1);
  a.atomic_add(Size::U64, R0, 0, R1);  // count the hit in the value itself
  a.ldx(Size::U64, R0, R0, 0);
  a.exit();
  a.bind(miss);
  a.mov(R0, 77);
  a.exit();
  auto prog = a.assemble();
  ASSERT_TRUE(prog.ok()) << prog.error().str();

  // Not relocated yet: the loader refuses with the map's name.
  auto unrelocated = load(*prog, "weir_pp_lookup");
  ASSERT_FALSE(unrelocated.ok());
  EXPECT_NE(unrelocated.error().str().find("map 'values'"), std::string::npos);

  ASSERT_TRUE(relocate(*prog, {{kValues, map.get()}}).ok());
  auto fd = load(*prog, "weir_pp_lookup");
  ASSERT_TRUE(fd.ok()) << fd.error().str();

  auto hit = run(*fd, tcp_packet(80));
  ASSERT_TRUE(hit.ok()) << hit.error().str();
  EXPECT_EQ(*hit, 0x1235u);
  auto hit2 = run(*fd, tcp_packet(80));
  ASSERT_TRUE(hit2.ok()) << hit2.error().str();
  EXPECT_EQ(*hit2, 0x1236u);
  uint64_t after = 0;
  ASSERT_EQ(bpf_map_lookup_elem(map.get(), &key, &after), 0);
  EXPECT_EQ(after, 0x1236u);

  ASSERT_EQ(bpf_map_delete_elem(map.get(), &key), 0);
  auto missed = run(*fd, tcp_packet(80));
  ASSERT_TRUE(missed.ok()) << missed.error().str();
  EXPECT_EQ(*missed, 77u);
}

// The verifier's rejection reaches the caller with its log (what the loader will report).
TEST(PolprogLoad, VerifierRejectionCarriesTheLog) {
  Assembler a("bad");
  a.mov(R0, R2);  // r2 is not initialised at program entry
  a.exit();
  auto prog = a.assemble();
  ASSERT_TRUE(prog.ok()) << prog.error().str();
  auto fd = load(*prog, "weir_pp_bad");
  ASSERT_FALSE(fd.ok());
  EXPECT_EQ(fd.error().err, EACCES) << fd.error().str();
  EXPECT_NE(fd.error().str().find("R2 !read_ok"), std::string::npos) << fd.error().str();
}

}  // namespace
}  // namespace weir::polprog
