// The two builds of the TC programs (docs/bpf-log.md): the production object carries no logging
// instruction, the log variant writes each packet's path to the kernel trace buffer in the
// seed's format, as weir_logif1 asks (level per interface, entry 0 for every other interface).
// Both verify on the running kernel (scripts/test-kernel.sh runs this on Debian 12's 6.1).
#include <bpf/bpf.h>
#include <elf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "bpf/map.h"
#include "dataplane/log_filters.h"
#include "dataplane/programs.h"
#include "tc_fixture.h"
#include "trace_lines.h"
#include "weir/log.h"
#include "weir/profile.h"
#include "weir/maps.h"

namespace weir::test {
namespace {

using Variant = dataplane::TcPrograms::Variant;

// What an object's code holds: instructions per function symbol and calls per helper id, over
// every executable section (programs and the global functions they call).
struct ObjectCode {
  std::map<std::string, size_t> insns;  // function -> instructions (8-byte slots)
  std::map<int32_t, size_t> helper_calls;
  size_t total_insns = 0;
};

ObjectCode inspect(const std::vector<uint8_t>& elf) {
  ObjectCode out;
  EXPECT_GE(elf.size(), sizeof(Elf64_Ehdr));
  if (elf.size() < sizeof(Elf64_Ehdr)) return out;
  Elf64_Ehdr eh;
  std::memcpy(&eh, elf.data(), sizeof(eh));
  EXPECT_EQ(std::memcmp(eh.e_ident, ELFMAG, SELFMAG), 0);
  EXPECT_EQ(eh.e_machine, EM_BPF);
  std::vector<Elf64_Shdr> sh(eh.e_shnum);
  EXPECT_LE(eh.e_shoff + sizeof(Elf64_Shdr) * eh.e_shnum, elf.size());
  if (eh.e_shoff + sizeof(Elf64_Shdr) * eh.e_shnum > elf.size()) return out;
  std::memcpy(sh.data(), elf.data() + eh.e_shoff, sizeof(Elf64_Shdr) * eh.e_shnum);
  for (const Elf64_Shdr& s : sh) {
    if (s.sh_type == SHT_PROGBITS && (s.sh_flags & SHF_EXECINSTR)) {
      for (size_t off = 0; off + sizeof(bpf_insn) <= s.sh_size; off += sizeof(bpf_insn)) {
        bpf_insn i;
        std::memcpy(&i, elf.data() + s.sh_offset + off, sizeof(i));
        out.total_insns++;
        if (i.code == (BPF_JMP | BPF_CALL) && i.src_reg == 0) out.helper_calls[i.imm]++;
      }
    }
    if (s.sh_type != SHT_SYMTAB) continue;
    const Elf64_Shdr& strtab = sh[s.sh_link];
    for (size_t off = 0; off + sizeof(Elf64_Sym) <= s.sh_size; off += sizeof(Elf64_Sym)) {
      Elf64_Sym sym;
      std::memcpy(&sym, elf.data() + s.sh_offset + off, sizeof(sym));
      if (ELF64_ST_TYPE(sym.st_info) != STT_FUNC) continue;
      const char* name = reinterpret_cast<const char*>(elf.data() + strtab.sh_offset + sym.st_name);
      out.insns[name] = sym.st_size / sizeof(bpf_insn);
    }
  }
  return out;
}

constexpr int32_t kTracePrintk = BPF_FUNC_trace_printk;
constexpr int32_t kTraceVprintk = BPF_FUNC_trace_vprintk;

TEST(LogVariant, ProductionObjectHasNoLoggingInstructionAndTheLogVariantHas) {
  auto prod_elf = dataplane::TcPrograms::object_bytes(Variant::Production);
  auto log_elf = dataplane::TcPrograms::object_bytes(Variant::Log);
  ASSERT_TRUE(prod_elf.ok()) << prod_elf.error().str();
  ASSERT_TRUE(log_elf.ok()) << log_elf.error().str();
  const ObjectCode prod = inspect(*prod_elf), log = inspect(*log_elf);

  EXPECT_EQ(prod.helper_calls.count(kTracePrintk), 0u) << "bpf_trace_printk in the production object";
  EXPECT_EQ(prod.helper_calls.count(kTraceVprintk), 0u) << "bpf_trace_vprintk in the production object";
  EXPECT_EQ(prod.helper_calls.count(BPF_FUNC_snprintf), 0u);
  for (const auto& [fn, n] : prod.insns) EXPECT_EQ(fn.rfind("weir_log_", 0), std::string::npos) << fn;
  const size_t log_calls = (log.helper_calls.count(kTracePrintk) ? log.helper_calls.at(kTracePrintk) : 0) +
                           (log.helper_calls.count(kTraceVprintk) ? log.helper_calls.at(kTraceVprintk) : 0);
  EXPECT_GE(log_calls, 10u) << "the log variant's statements";
  for (const char* fn : {"weir_log_begin", "weir_log_tuple", "weir_log_stage", "weir_log_nat", "weir_log_policy",
                         "weir_log_final"})
    EXPECT_EQ(log.insns.count(fn), 1u) << fn << " missing from the log variant";

  // Instruction counts, program by program: the log variant's programs are the production ones
  // plus their log calls; the production ones carry none of them.
  std::cout << "instructions (production / log variant):\n";
  for (const char* prog : {"weir_from_wl", "weir_to_wl", "weir_from_wl_pol", "weir_to_wl_pol", "weir_vxlan_encap",
                           "weir_from_ul"}) {
    ASSERT_EQ(prod.insns.count(prog), 1u) << prog;
    ASSERT_EQ(log.insns.count(prog), 1u) << prog;
    std::cout << "  " << prog << ": " << prod.insns.at(prog) << " / " << log.insns.at(prog) << "\n";
    EXPECT_GT(log.insns.at(prog), prod.insns.at(prog)) << prog << ": no log statement in the log variant";
  }
  std::cout << "  whole object: " << prod.total_insns << " / " << log.total_insns << "\n";
  EXPECT_GT(log.total_insns, prod.total_insns);
}

// --- the log variant on the kernel ------------------------------------------------------------

// Verifier cost of the log variant's programs on this kernel (the production programs' are
// TcVerifier's): within the same budget, a quarter of the kernel's limit.
TEST(LogVariant, EveryProgramOfTheLogVariantVerifiesWithinTheBudget) {
  ASSERT_TRUE(topology().ready) << topology().error;
  // The log variant, the build with the log and profiling, the largest of all (the profiling
  // build alone is a subset of it: loaded by ProfileTest's and the e2e tests), and the trace build.
  for (Variant variant : {Variant::Log, Variant::LogProfile, Variant::Trace}) {
    auto obj = TcObject::shared(MapSizes::small(), variant);
    ASSERT_TRUE(obj.ok()) << obj.error().str();
    EXPECT_EQ((*obj)->programs().variant(), variant);
    for (auto [p, name] : {std::pair{Prog::FromWl, "weir_from_wl"}, {Prog::ToWl, "weir_to_wl"},
                           {Prog::FromWlPol, "weir_from_wl_pol"}, {Prog::ToWlPol, "weir_to_wl_pol"},
                           {Prog::VxlanEncap, "weir_vxlan_encap"}, {Prog::FromUl, "weir_from_ul"}}) {
      bpf_prog_info info{};
      uint32_t len = sizeof(info);
      ASSERT_EQ(bpf_obj_get_info_by_fd((*obj)->prog_fd(p), &info, &len), 0) << name;
      std::cout << dataplane::to_string(variant) << " build " << name << ": " << info.verified_insns
                << " verified insns\n";
      EXPECT_GT(info.verified_insns, 0u) << name;
      EXPECT_LE(info.verified_insns, kVerifiedInsnsBudget) << name;
    }
  }
}

// The profiling statements are in the profiling builds only: no weir_prof_* function elsewhere,
// and every program of the profiling build longer than the production one.
TEST(ProfileVariant, OnlyTheProfilingBuildsCarryTimingInstructions) {
  std::map<Variant, ObjectCode> code;
  for (Variant v : {Variant::Production, Variant::Log, Variant::Profile, Variant::LogProfile}) {
    auto elf = dataplane::TcPrograms::object_bytes(v);
    ASSERT_TRUE(elf.ok()) << elf.error().str();
    code[v] = inspect(*elf);
  }
  for (Variant v : {Variant::Production, Variant::Log, Variant::Profile, Variant::LogProfile}) {
    for (const char* fn : {"weir_prof_begin", "weir_prof_new", "weir_prof_end"})
      EXPECT_EQ(code[v].insns.count(fn), dataplane::profiles(v) ? 1u : 0u) << dataplane::to_string(v) << ": " << fn;
    EXPECT_EQ(code[v].insns.count("weir_log_begin"), dataplane::logs(v) ? 1u : 0u) << dataplane::to_string(v);
  }
  for (const char* prog : {"weir_from_wl", "weir_to_wl", "weir_from_wl_pol", "weir_to_wl_pol", "weir_vxlan_encap",
                           "weir_from_ul"}) {
    std::cout << "  " << prog << ": production " << code[Variant::Production].insns.at(prog) << ", profiling "
              << code[Variant::Profile].insns.at(prog) << "\n";
    if (std::string(prog) != "weir_from_wl_pol" && std::string(prog) != "weir_to_wl_pol")
      EXPECT_GT(code[Variant::Profile].insns.at(prog), code[Variant::Production].insns.at(prog)) << prog;
  }
}

class LogTest : public TcTest {
 protected:
  Variant variant() const override { return variant_; }

  // Names the client's interface with a name no earlier run wrote to the trace buffer (the
  // tag is the name weir_ifstate1 gives), and sets what weir_logif1 asks for `ifindex`.
  std::string fresh_client_name() {
    static int n = 0;
    std::string name = "wl" + std::to_string(getpid() % 100000) + "x" + std::to_string(n++);
    weir_ifstate_val ifs{};
    std::snprintf(ifs.name, sizeof(ifs.name), "%s", name.c_str());
    ifs.flags = WEIR_IF_F_WORKLOAD | WEIR_IF_F_READY;
    ifs.ingress_slot = WEIR_NO_POLICY_SLOT;
    ifs.egress_slot = WEIR_NO_POLICY_SLOT;
    std::memcpy(ifs.host_mac, kClientHostMac.data(), 6);
    EXPECT_TRUE(tc->put_ifstate(client_if, ifs).ok());
    return name;
  }
  void set_log(uint32_t ifindex, uint32_t level) {
    weir_log_if_val v{level, WEIR_LOG_FILTER_ALL};
    ASSERT_EQ(bpf_map_update_elem(tc->map_fd(WEIR_MAP_LOG_IF), &ifindex, &v, BPF_ANY), 0) << std::strerror(errno);
  }

  Variant variant_ = Variant::Log;
};

TEST_F(LogTest, DebugLogsEveryStageOfANewServiceFlowInTheSeedsFormat) {
  const std::string name = fresh_client_name();
  set_log(0, WEIR_LOG_DEBUG);  // every interface
  auto r = from_wl(client_if, client_tcp(43123, kVip, kVipTcpPort, kTcpSyn));
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT);
  auto lines = trace_of(name);
  const std::string all = messages(lines);
  ASSERT_GE(lines.size(), 6u) << all;
  for (const auto& l : lines) EXPECT_EQ(l.dir, 'E') << "from a workload: the workload's egress";
  EXPECT_EQ(lines.front().message.rfind("New packet at ifindex=" + std::to_string(client_if) + ";", 0), 0u) << all;
  EXPECT_TRUE(in_order(lines, {"IP 10.65.0.10:43123 -> 10.96.0.10:80 proto=6", "CT: miss",
                               "NAT: frontend 10.96.0.10:80 -> backend 10.65.1.11:8080",
                               "Redirect to ifindex=" + std::to_string(be1_if)}))
      << all;
  EXPECT_TRUE(std::regex_match(lines.back().message,
                               std::regex(R"(Final result=REDIRECT \(7\)\. Program execution time: \d+ns)")))
      << all;
}

TEST_F(LogTest, InfoLogsTheTupleADropsReasonAndTheFinalResultOnly) {
  const std::string name = fresh_client_name();
  set_log(client_if, WEIR_LOG_INFO);
  // From the client's interface with an address that is not the client's: dropped.
  auto spoofed = tcp_pkt(kClientMac, kClientHostMac, ip4("10.65.9.9"), 40000, kBe1Ip, 80, kTcpSyn);
  auto r = from_wl(client_if, spoofed);
  ASSERT_EQ(r.retval, TC_ACT_SHOT);
  auto lines = trace_of(name);
  const std::string all = messages(lines);
  ASSERT_EQ(lines.size(), 3u) << all;
  EXPECT_EQ(lines[0].message, "IP 10.65.9.9:40000 -> 10.65.1.11:80 proto=6");
  EXPECT_EQ(lines[1].message, "Drop reason=dropped_unknown_source");
  EXPECT_TRUE(std::regex_match(lines[2].message, std::regex(R"(Final result=DENY \(2\)\. Program execution time: \d+ns)")))
      << all;
}

TEST_F(LogTest, ToWorkloadIsTaggedIngressAndAnInterfaceWithoutEntryFallsBackToEntryZero) {
  // The backend's interface has no entry of its own: entry 0 decides. Its ifstate name is weir1h;
  // what tells this run's lines apart is the source port.
  set_log(0, WEIR_LOG_INFO);
  const uint16_t sport = static_cast<uint16_t>(20000 + getpid() % 20000);
  auto r = to_wl(be1_if, tcp_pkt(kBe1HostMac, kBe1Mac, kRemoteIp, sport, kBe1Ip, 8080, kTcpSyn));
  ASSERT_EQ(r.retval, TC_ACT_OK);
  auto lines = trace_of("weir1h");
  const std::string tuple = "IP 192.168.50.5:" + std::to_string(sport) + " -> 10.65.1.11:8080 proto=6";
  size_t at = 0;
  while (at < lines.size() && lines[at].message != tuple) at++;
  ASSERT_LT(at, lines.size()) << messages(lines);
  EXPECT_EQ(lines[at].dir, 'I') << "towards a workload: its ingress";
  ASSERT_LT(at + 1, lines.size());
  EXPECT_EQ(lines[at + 1].message.rfind("Final result=ALLOW (0).", 0), 0u) << messages(lines);
}

TEST_F(LogTest, OffOrNoEntryLogsNothing) {
  const std::string name = fresh_client_name();
  // No entry at all.
  auto r = from_wl(client_if, client_udp(40001, kVip, kVipUdpPort));
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT);
  // An entry that says Off, and entry 0 Debug: the interface's own entry decides.
  set_log(client_if, WEIR_LOG_OFF);
  set_log(0, WEIR_LOG_DEBUG);
  r = from_wl(client_if, client_udp(40002, kVip, kVipUdpPort));
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT);
  EXPECT_TRUE(trace_of(name).empty()) << messages(trace_of(name));
}

class ProductionLogTest : public LogTest {
 protected:
  ProductionLogTest() { variant_ = Variant::Production; }
};

TEST_F(ProductionLogTest, TheProductionObjectNeverLogsWhateverTheMapSays) {
  const std::string name = fresh_client_name();
  set_log(0, WEIR_LOG_DEBUG);
  set_log(client_if, WEIR_LOG_DEBUG);
  auto r = from_wl(client_if, client_tcp(43124, kVip, kVipTcpPort, kTcpSyn));
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT);
  EXPECT_TRUE(trace_of(name).empty()) << messages(trace_of(name));
}

// --- pcap filters (bpfLogFilters) ---------------------------------------------------------------

// The filters as the agent puts them (dataplane::LogFilters), the client's interface known by
// the name fresh_client_name() gave it.
class LogFilterTest : public LogTest {
 protected:
  void SetUp() override {
    LogTest::SetUp();
    if (HasFatalFailure()) return;
    name_ = fresh_client_name();
    filters_ = std::make_unique<dataplane::LogFilters>(tc->programs(), [this](const std::string& n) {
      return n == name_ ? client_if : n == "weir1h" ? be1_if : 0u;
    });
  }
  Status apply(uint32_t level, std::map<std::string, std::string> f) {
    return filters_->apply(dataplane::LogSettings{level, std::move(f)});
  }
  size_t count(const std::vector<calc::TraceLine>& lines, const std::string& prefix) {
    size_t n = 0;
    for (const auto& l : lines) n += l.message.rfind(prefix, 0) == 0;
    return n;
  }
  uint64_t total(uint32_t ifindex, uint32_t hook, int counter) { return tc->counters(ifindex, hook).c[counter]; }

  std::string name_;
  std::unique_ptr<dataplane::LogFilters> filters_;
};

TEST_F(LogFilterTest, OnlyMatchingPacketsAreLoggedAndEveryPacketIsProcessedOnce) {
  ASSERT_TRUE(apply(WEIR_LOG_DEBUG, {{"all", "host 10.65.0.10 and tcp port 80"}}).ok());
  auto r = from_wl(client_if, client_tcp(43125, kVip, kVipTcpPort, kTcpSyn));
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT);
  r = from_wl(client_if, client_udp(40003, kVip, kVipUdpPort));
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT) << "a packet the filter does not match goes on as without a log";
  r = from_wl(client_if, client_tcp(43126, kVip, 8443, kTcpSyn));
  ASSERT_NE(r.retval, TC_ACT_SHOT);

  auto lines = trace_of(name_);
  const std::string all = messages(lines);
  EXPECT_EQ(count(lines, "New packet at"), 1u) << "logged once, though the main program ran twice\n" << all;
  EXPECT_EQ(count(lines, "IP 10.65.0.10:43125 -> 10.96.0.10:80 proto=6"), 1u) << all;
  EXPECT_EQ(count(lines, "Final result=REDIRECT (7)"), 1u) << all;
  EXPECT_EQ(count(lines, "IP 10.65.0.10:40003"), 0u) << "UDP: not matched\n" << all;
  EXPECT_EQ(count(lines, "IP 10.65.0.10:43126"), 0u) << "port 8443: not matched\n" << all;
  EXPECT_EQ(count(lines, "Final result="), 1u) << all;
  // Each packet counted once: the first pass of the main program ends in the filter's tail call.
  EXPECT_EQ(total(client_if, WEIR_HOOK_INGRESS, WEIR_CNT_TOTAL), 3u);
  EXPECT_EQ(filters_->slots().size(), 1u);
}

TEST_F(LogFilterTest, FiltersSeeThePacketBeforeNat) {
  // The client's packets are addressed to the VIP; the backend is what NAT makes of them.
  ASSERT_TRUE(apply(WEIR_LOG_INFO, {{name_, "dst host 10.65.1.11"}}).ok());
  ASSERT_EQ(from_wl(client_if, client_tcp(43127, kVip, kVipTcpPort, kTcpSyn)).retval, TC_ACT_REDIRECT);
  EXPECT_TRUE(trace_of(name_).empty()) << messages(trace_of(name_));
  ASSERT_TRUE(apply(WEIR_LOG_INFO, {{name_, "dst host 10.96.0.10"}}).ok());
  ASSERT_EQ(from_wl(client_if, client_tcp(43128, kVip, kVipTcpPort, kTcpSyn)).retval, TC_ACT_REDIRECT);
  auto lines = trace_of(name_);
  EXPECT_EQ(count(lines, "IP 10.65.0.10:43128 -> 10.96.0.10:80 proto=6"), 1u) << messages(lines);
  EXPECT_EQ(filters_->slots().size(), 1u) << "the filter no interface names any more is gone";
}

TEST_F(LogFilterTest, AnInterfacesOwnFilterWinsOverAllAndWithoutAllOtherInterfacesLogEverything) {
  ASSERT_TRUE(apply(WEIR_LOG_INFO, {{name_, "udp"}}).ok());
  ASSERT_EQ(from_wl(client_if, client_tcp(43129, kVip, kVipTcpPort, kTcpSyn)).retval, TC_ACT_REDIRECT);
  ASSERT_EQ(from_wl(client_if, client_udp(40004, kVip, kVipUdpPort)).retval, TC_ACT_REDIRECT);
  // Below LogTest's ports (20000 + pid % 20000): this process's trace lines of weir1h stay apart.
  const uint16_t sport = static_cast<uint16_t>(2000 + 2 * (getpid() % 9000));
  ASSERT_EQ(to_wl(be1_if, tcp_pkt(kBe1HostMac, kBe1Mac, kRemoteIp, sport, kBe1Ip, 8080, kTcpSyn)).retval, TC_ACT_OK);
  auto lines = trace_of(name_);
  EXPECT_EQ(count(lines, "IP 10.65.0.10:43129"), 0u) << messages(lines);
  EXPECT_EQ(count(lines, "IP 10.65.0.10:40004 -> 10.96.0.10:53 proto=17"), 1u) << messages(lines);
  EXPECT_EQ(count(trace_of("weir1h"), "IP 192.168.50.5:" + std::to_string(sport) + " -> 10.65.1.11:8080"), 1u)
      << "no filter of its own and no \"all\": every packet\n" << messages(trace_of("weir1h"));

  // With "all", the backend's interface logs only what it matches; the client keeps its own.
  ASSERT_TRUE(apply(WEIR_LOG_INFO, {{name_, "udp"}, {"all", "icmp"}}).ok());
  ASSERT_EQ(to_wl(be1_if, tcp_pkt(kBe1HostMac, kBe1Mac, kRemoteIp, sport + 1, kBe1Ip, 8080, kTcpSyn)).retval, TC_ACT_OK);
  EXPECT_EQ(count(trace_of("weir1h"), "IP 192.168.50.5:" + std::to_string(sport + 1)), 0u);
  ASSERT_EQ(from_wl(client_if, client_udp(40005, kVip, kVipUdpPort)).retval, TC_ACT_REDIRECT);
  EXPECT_EQ(count(trace_of(name_), "IP 10.65.0.10:40005"), 1u);
  EXPECT_EQ(filters_->slots().size(), 2u);
}

TEST_F(LogFilterTest, AnEmptyFilterSlotLogsNothingAndAnEmptyEntrySlotDropsCounted) {
  ASSERT_TRUE(apply(WEIR_LOG_DEBUG, {{"all", "tcp"}}).ok());
  const uint32_t slot = filters_->slots().at("tcp");
  maps::LogMaps& m = tc->programs().log_maps();
  // The filter gone (as while the agent replaces it): the packet goes on, not logged.
  ASSERT_TRUE(m.logjmp.remove(slot).ok());
  ASSERT_EQ(from_wl(client_if, client_tcp(43130, kVip, kVipTcpPort, kTcpSyn)).retval, TC_ACT_REDIRECT);
  EXPECT_TRUE(trace_of(name_).empty()) << messages(trace_of(name_));
  // The main program's slot gone: the filter cannot return the packet to it; dropped, counted.
  ASSERT_TRUE(apply(WEIR_LOG_DEBUG, {{"all", "udp or tcp"}}).ok());
  ASSERT_TRUE(m.logjmp.remove(WEIR_LOGJMP_FROM_WL).ok());
  EXPECT_EQ(from_wl(client_if, client_tcp(43131, kVip, kVipTcpPort, kTcpSyn)).retval, TC_ACT_SHOT);
  EXPECT_EQ(total(client_if, WEIR_HOOK_INGRESS, WEIR_CNT_DROP_TAIL_CALL), 1u);
  EXPECT_EQ(total(client_if, WEIR_HOOK_INGRESS, WEIR_CNT_TOTAL), 2u);
  ASSERT_TRUE(tc->programs().install_continuations().ok());
}

TEST_F(LogFilterTest, AnExpressionThatDoesNotCompileChangesNothing) {
  ASSERT_TRUE(apply(WEIR_LOG_INFO, {{"all", "udp"}}).ok());
  const auto before = filters_->slots();
  auto bad = apply(WEIR_LOG_DEBUG, {{"all", "udp"}, {name_, "tcp prot 80"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().err, 0) << "refused input, not a system error: " << bad.error().str();
  EXPECT_NE(bad.error().msg.find("bpfLogFilters[" + name_ + "]: pcap filter \"tcp prot 80\""), std::string::npos)
      << bad.error().str();
  auto unsupported = apply(WEIR_LOG_DEBUG, {{"all", "inbound"}});
  ASSERT_FALSE(unsupported.ok());
  EXPECT_NE(unsupported.error().msg.find("is not supported"), std::string::npos) << unsupported.error().str();
  EXPECT_EQ(filters_->slots(), before);
  // Still Info with "udp" everywhere.
  ASSERT_EQ(from_wl(client_if, client_udp(40006, kVip, kVipUdpPort)).retval, TC_ACT_REDIRECT);
  auto lines = trace_of(name_);
  EXPECT_EQ(count(lines, "IP 10.65.0.10:40006"), 1u) << messages(lines);
  EXPECT_EQ(count(lines, "New packet"), 0u) << "Info, not Debug\n" << messages(lines);
}

TEST_F(LogFilterTest, OffLeavesEntryZeroAloneAndNoFilter) {
  ASSERT_TRUE(apply(WEIR_LOG_DEBUG, {{"all", "udp"}, {name_, "tcp"}}).ok());
  ASSERT_TRUE(apply(WEIR_LOG_OFF, {{"all", "udp"}, {name_, "tcp"}}).ok());
  EXPECT_TRUE(filters_->slots().empty());
  maps::LogMaps& m = tc->programs().log_maps();
  auto entries = m.logif.dump();
  ASSERT_TRUE(entries.ok());
  ASSERT_EQ(entries->size(), 1u);
  EXPECT_EQ((*entries)[0].first, 0u);
  EXPECT_EQ((*entries)[0].second.level, uint32_t(WEIR_LOG_OFF));
  for (uint32_t slot = WEIR_LOGJMP_FIRST_FILTER; slot < WEIR_MAP_LOG_JMP_SIZE; slot++)
    EXPECT_FALSE(m.logjmp.lookup(slot).value().has_value()) << slot;
  ASSERT_EQ(from_wl(client_if, client_tcp(43132, kVip, kVipTcpPort, kTcpSyn)).retval, TC_ACT_REDIRECT);
  EXPECT_TRUE(trace_of(name_).empty());
}

// --- runtime profiling (bpfProfiling) ------------------------------------------------------------

Result<bpf::PerCpuMap<weir_prof_key, weir_prof_val>> prof_map(int fd) {
  auto m = bpf::MapFd::dup_of(fd);
  if (!m) return m.error();
  return bpf::PerCpuMap<weir_prof_key, weir_prof_val>::create(std::move(*m));
}

class ProfileTest : public TcTest {
 protected:
  // The build with both (the largest, verified by LogVariant above): nothing is logged without
  // weir_logif1 entries, and the profiling is the profiling build's.
  Variant variant() const override { return variant_; }
  // (ifindex, hook, kind) -> {runs, total ns} summed over CPUs; nullopt when there is no entry.
  std::optional<weir_prof_val> profile(uint32_t ifindex, uint32_t hook, uint32_t kind) {
    auto m = prof_map(tc->map_fd(WEIR_MAP_PROF));
    EXPECT_TRUE(m.ok());
    if (!m.ok()) return std::nullopt;
    weir_prof_key k{ifindex, static_cast<uint16_t>(hook), static_cast<uint16_t>(kind)};
    auto per_cpu = m->lookup(k);
    EXPECT_TRUE(per_cpu.ok());
    if (!per_cpu.ok() || !per_cpu->has_value()) return std::nullopt;
    weir_prof_val sum{};
    for (const auto& v : **per_cpu) {
      sum.runs += v.runs;
      sum.total_ns += v.total_ns;
    }
    return sum;
  }
  Variant variant_ = Variant::LogProfile;
};

TEST_F(ProfileTest, EachPacketIsTimedOnceAsNewOrEstablishedAtItsInterfaceAndHook) {
  // A new flow through a service: conntrack miss, NAT, entries created.
  ASSERT_EQ(from_wl(client_if, client_tcp(43200, kVip, kVipTcpPort, kTcpSyn)).retval, TC_ACT_REDIRECT);
  auto new_flow = profile(client_if, WEIR_HOOK_INGRESS, WEIR_PROF_NEW);
  ASSERT_TRUE(new_flow.has_value());
  EXPECT_EQ(new_flow->runs, 1u);
  EXPECT_GT(new_flow->total_ns, 0u);
  EXPECT_FALSE(profile(client_if, WEIR_HOOK_INGRESS, WEIR_PROF_EST).has_value());
  // Its next packets: conntrack hits.
  for (int i = 0; i < 3; i++)
    ASSERT_NE(from_wl(client_if, client_tcp(43200, kVip, kVipTcpPort, kTcpAck)).retval, TC_ACT_SHOT);
  auto est = profile(client_if, WEIR_HOOK_INGRESS, WEIR_PROF_EST);
  ASSERT_TRUE(est.has_value());
  EXPECT_EQ(est->runs, 3u);
  EXPECT_EQ(profile(client_if, WEIR_HOOK_INGRESS, WEIR_PROF_NEW)->runs, 1u);
  // Towards a workload: its interface's egress hook.
  ASSERT_EQ(to_wl(be1_if, tcp_pkt(kBe1HostMac, kBe1Mac, kRemoteIp, 41000, kBe1Ip, 8080, kTcpSyn)).retval, TC_ACT_OK);
  auto to = profile(be1_if, WEIR_HOOK_EGRESS, WEIR_PROF_NEW);
  ASSERT_TRUE(to.has_value());
  EXPECT_EQ(to->runs, 1u);
  // A dropped packet is timed too (a spoofed source: dropped before conntrack is consulted).
  ASSERT_EQ(from_wl(client_if, tcp_pkt(kClientMac, kClientHostMac, ip4("10.65.9.9"), 40000, kBe1Ip, 80, kTcpSyn)).retval,
            TC_ACT_SHOT);
  EXPECT_EQ(profile(client_if, WEIR_HOOK_INGRESS, WEIR_PROF_NEW)->runs, 2u);
}

class ProductionProfileTest : public ProfileTest {
 protected:
  ProductionProfileTest() { variant_ = Variant::Production; }
};

TEST_F(ProductionProfileTest, TheProductionBuildProfilesNothing) {
  ASSERT_EQ(from_wl(client_if, client_tcp(43201, kVip, kVipTcpPort, kTcpSyn)).retval, TC_ACT_REDIRECT);
  ASSERT_NE(from_wl(client_if, client_tcp(43201, kVip, kVipTcpPort, kTcpAck)).retval, TC_ACT_SHOT);
  auto m = prof_map(tc->map_fd(WEIR_MAP_PROF));
  ASSERT_TRUE(m.ok());
  auto entries = m->dump();
  ASSERT_TRUE(entries.ok());
  EXPECT_TRUE(entries->empty());
}

}  // namespace
}  // namespace weir::test
