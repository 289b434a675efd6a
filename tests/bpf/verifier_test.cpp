// Every program variant through the verifier. The object has one variant (no read-only
// configuration): the two main programs, the two policy continuations, the VXLAN encapsulation
// and the underlay's decapsulation, loaded with the compiled-in default map sizes, exactly as
// the agent loads them before it overrides sizes.
//
// The verifier's cost of each program is recorded per kernel, and bounded: every TC program of
// the object and a representative generated policy program must verify in at most
// kVerifiedInsnsBudget instructions (a quarter of the kernel's 1M limit), so that a program that
// grows is caught long before a kernel refuses it. The figures (verified_insns of bpf_prog_info,
// 5.16+, and the xlated length) go to <build>/verifier/<uname -r>.tsv; scripts/test-kernel.sh
// brings the file written inside its Debian 12 guest back to the same directory.
#include <bpf/bpf.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "calc/policy_ir.h"
#include "kernel_version.h"
#include "netns_env.h"
#include "polprog/compiler.h"
#include "tc_harness.h"
#include "weir/maps.h"
#include "weir/policy.h"

#ifndef WEIR_BUILD_DIR
#error "WEIR_BUILD_DIR (the build directory, where verifier/<kernel>.tsv goes) must be defined by the build"
#endif

namespace weir::test {
namespace {

namespace pol = calc::pol;


struct ProgCost {
  std::string name;
  uint32_t verified = 0;  // bpf_prog_info.verified_insns: instructions the verifier processed
  uint32_t xlated = 0;    // instructions after the verifier's rewrites
};

Result<ProgCost> cost_of(const std::string& name, int fd) {
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  int rc = bpf_obj_get_info_by_fd(fd, &info, &len);
  if (rc != 0) return sys_error(rc, "bpf_obj_get_info_by_fd(" + name + ")");
  return ProgCost{name, info.verified_insns, info.xlated_prog_len / 8};
}

pol::Rule rule(uint64_t id, pol::Action a, pol::Match m) {
  pol::Rule r;
  r.id = id;
  r.action = a;
  r.match = std::move(m);
  return r;
}

model::Cidr cidr(const char* addr, uint8_t len) { return model::Cidr{*model::Ipv4::parse(addr), len}; }

// What calc builds for a pod in a typical namespace: a global tier that passes cluster traffic,
// blocks a range and logs, then the Kubernetes tier with four NetworkPolicies (web from the
// frontend pods, DNS, metrics on a named port from the monitoring namespace, an ipBlock with
// an except, ICMP echo). Every match kind of the compiler appears at least once.
pol::EndpointPolicy representative_policy() {
  const calc::SetId frontend = 0x1001, monitoring_ns = 0x1002, metrics_port = 0x1003, dns = 0x1004;
  auto M = [](auto f) {
    pol::Match m;
    f(m);
    return m;
  };
  using A = pol::Action;
  pol::Tier security{"security", {}, A::Deny};
  security.policies.push_back({"security-baseline", {
      rule(1, A::Log, M([](auto& m) { m.protocol = 6; m.dst_ports = {{22, 22}}; })),
      rule(2, A::Deny, M([](auto& m) { m.src_nets = {cidr("192.0.2.0", 24), cidr("198.51.100.0", 24)}; })),
      rule(3, A::Pass, M([](auto& m) { m.src_nets = {cidr("10.64.0.0", 10)}; m.src_not_nets = {cidr("10.64.255.0", 24)}; })),
      rule(4, A::Pass, M([](auto& m) { m.not_protocol = 47; })),
  }});
  pol::Tier k8s{"kubernetes", {}, A::Deny};
  k8s.policies.push_back({"shop/knp.default.allow-web", {
      rule(10, A::Allow, M([&](auto& m) { m.protocol = 6; m.src_sets = {frontend}; m.dst_ports = {{80, 80}, {443, 443}}; })),
      rule(11, A::Allow, M([&](auto& m) { m.protocol = 6; m.src_sets = {frontend}; m.src_ports = {{1024, 65535}}; m.dst_ports = {{8000, 8999}}; m.dst_not_ports = {{8500, 8500}}; })),
  }});
  k8s.policies.push_back({"shop/knp.default.allow-dns", {
      rule(20, A::Allow, M([&](auto& m) { m.protocol = 17; m.dst_sets = {dns}; m.dst_ports = {{53, 53}}; })),
      rule(21, A::Allow, M([&](auto& m) { m.protocol = 6; m.dst_sets = {dns}; m.dst_ports = {{53, 53}}; })),
  }});
  k8s.policies.push_back({"shop/knp.default.allow-metrics", {
      rule(30, A::Allow, M([&](auto& m) { m.protocol = 6; m.src_sets = {monitoring_ns}; m.dst_named_port_sets = {metrics_port}; })),
      rule(31, A::Deny, M([&](auto& m) { m.src_not_sets = {monitoring_ns}; m.dst_named_port_sets = {metrics_port}; })),
  }});
  k8s.policies.push_back({"shop/knp.default.ipblock-and-ping", {
      rule(40, A::Allow, M([](auto& m) { m.src_nets = {cidr("172.16.0.0", 12)}; m.src_not_nets = {cidr("172.16.5.0", 24)}; m.dst_nets = {cidr("10.65.0.0", 16)}; m.dst_not_nets = {cidr("10.65.0.1", 32)}; })),
      rule(41, A::Allow, M([](auto& m) { m.protocol = 1; m.icmp_type = 8; m.icmp_code = 0; })),
      rule(42, A::Deny, M([&](auto& m) { m.dst_not_sets = {frontend}; m.protocol = 17; })),
  }});
  pol::EndpointPolicy p;
  p.direction = pol::Direction::Ingress;
  p.tiers = {security, k8s};
  return p;
}

// Compiles and loads the representative policy against the object's maps; one cost per chunk.
Result<std::vector<ProgCost>> policy_costs(const TcObject& obj) {
  polprog::CompileOptions opts;
  uint32_t next_slot = WEIR_JUMP_FIRST_POLICY_SLOT + 1;
  opts.slot_of_chunk = [&](size_t) { return next_slot++; };
  auto compiled = polprog::compile(representative_policy(), opts);
  if (!compiled.ok()) return compiled.error();
  const polprog::PolicyMapFds fds{obj.map_fd(WEIR_MAP_PSTATE),   obj.map_fd(WEIR_MAP_IPSETS),
                                  obj.map_fd(WEIR_MAP_RULE_CNT), obj.map_fd(WEIR_MAP_JUMP),
                                  obj.map_fd(WEIR_MAP_COUNTERS), obj.map_fd(WEIR_MAP_IPSET_X)};
  auto loaded = polprog::load(*compiled, fds, "weir_pol_repr");
  if (!loaded.ok()) return loaded.error();
  std::vector<ProgCost> costs;
  for (size_t i = 0; i < loaded->chunks.size(); i++) {
    auto c = cost_of("policy_representative_" + std::to_string(i), loaded->chunks[i].get());
    if (!c.ok()) return c.error();
    costs.push_back(*c);
  }
  return costs;
}

Status write_tsv(const std::string& path, const std::string& release, const std::vector<ProgCost>& costs) {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  if (ec) return Error{ec.value(), "creating the directory of " + path};
  std::ofstream f(path, std::ios::trunc);
  f << "kernel\tprogram\tverified_insns\tbudget\txlated_insns\n";
  for (const auto& c : costs)
    f << release << '\t' << c.name << '\t' << c.verified << '\t' << kVerifiedInsnsBudget << '\t' << c.xlated << '\n';
  f.close();
  if (!f) return errno_error("writing " + path);
  return {};
}

TEST(TcVerifier, EveryProgramWithinTheBudgetRecordedPerKernel) {
  ASSERT_TRUE(topology().ready) << topology().error;
  auto kernel = KernelVersion::running();
  ASSERT_TRUE(kernel.has_value()) << "uname(2)";
  auto obj = TcObject::shared(MapSizes::defaults());
  ASSERT_TRUE(obj.ok()) << obj.error().str();
  std::vector<ProgCost> costs;
  const std::pair<Prog, const char*> progs[] = {{Prog::FromWl, "weir_from_wl"},
                                                {Prog::ToWl, "weir_to_wl"},
                                                {Prog::FromWlPol, "weir_from_wl_pol"},
                                                {Prog::ToWlPol, "weir_to_wl_pol"},
                                                {Prog::VxlanEncap, "weir_vxlan_encap"},
                                                {Prog::FromUl, "weir_from_ul"}};
  for (const auto& [p, name] : progs) {
    auto c = cost_of(name, (*obj)->prog_fd(p));
    ASSERT_TRUE(c.ok()) << c.error().str();
    costs.push_back(*c);
  }
  auto pc = policy_costs(**obj);
  ASSERT_TRUE(pc.ok()) << pc.error().str();
  costs.insert(costs.end(), pc->begin(), pc->end());

  const std::string path = std::string(WEIR_BUILD_DIR) + "/verifier/" + kernel->release + ".tsv";
  auto st = write_tsv(path, kernel->release, costs);
  ASSERT_TRUE(st.ok()) << st.error().str();
  std::cout << "verifier cost on " << kernel->release << " (" << path << "):\n";
  for (const auto& c : costs) {
    std::cout << "  " << c.name << ": " << c.verified << " verified insns (budget " << kVerifiedInsnsBudget
              << "), " << c.xlated << " xlated\n";
    EXPECT_GT(c.verified, 0u) << c.name << ": no verified_insns in bpf_prog_info (kernel before 5.16?)";
    EXPECT_LE(c.verified, kVerifiedInsnsBudget)
        << c.name << ": the verifier of kernel " << kernel->release << " processed " << c.verified
        << " instructions, over the budget of " << kVerifiedInsnsBudget
        << " (a quarter of the 1M limit): split the program or make its paths cheaper to verify";
  }
}

TEST(TcVerifier, WholeObjectLoadsWithDefaultMapSizes) {
  ASSERT_TRUE(topology().ready) << topology().error;
  auto obj = TcObject::shared(MapSizes::defaults());
  ASSERT_TRUE(obj.ok()) << obj.error().str();
  for (Prog p : {Prog::FromWl, Prog::ToWl, Prog::FromWlPol, Prog::ToWlPol, Prog::VxlanEncap, Prog::FromUl}) {
    EXPECT_GE((*obj)->prog_fd(p), 0);
    auto insns = (*obj)->prog_insns(p);
    ASSERT_TRUE(insns.ok()) << insns.error().str();
    EXPECT_GT(*insns, 100u);
  }
  EXPECT_EQ((*obj)->map_max_entries(WEIR_MAP_NAT_FE), uint32_t(WEIR_MAP_NAT_FE_SIZE));
  EXPECT_EQ((*obj)->map_max_entries(WEIR_MAP_NAT_BE), uint32_t(WEIR_MAP_NAT_BE_SIZE));
  EXPECT_EQ((*obj)->map_max_entries(WEIR_MAP_CT), uint32_t(WEIR_MAP_CT_SIZE));
  EXPECT_EQ((*obj)->map_max_entries(WEIR_MAP_ROUTES), uint32_t(WEIR_MAP_ROUTES_SIZE));
  EXPECT_EQ((*obj)->map_max_entries(WEIR_MAP_IFSTATE), uint32_t(WEIR_MAP_IFSTATE_SIZE));
  EXPECT_EQ((*obj)->map_max_entries(WEIR_MAP_COUNTERS), uint32_t(WEIR_MAP_COUNTERS_SIZE));
  EXPECT_EQ((*obj)->map_max_entries(WEIR_MAP_JUMP), uint32_t(WEIR_MAP_JUMP_SIZE));
  EXPECT_EQ((*obj)->map_max_entries(WEIR_MAP_PSTATE), 1u);
  EXPECT_EQ((*obj)->map_max_entries(WEIR_MAP_IPSETS), uint32_t(WEIR_MAP_IPSETS_SIZE));
  EXPECT_EQ((*obj)->map_max_entries(WEIR_MAP_IPSET_X), uint32_t(WEIR_MAP_IPSET_X_SIZE));
  EXPECT_EQ((*obj)->map_max_entries(WEIR_MAP_RULE_CNT), uint32_t(WEIR_MAP_RULE_CNT_SIZE));
  EXPECT_EQ((*obj)->map_max_entries(WEIR_MAP_TUNNEL), 1u);
  EXPECT_EQ((*obj)->map_max_entries(WEIR_MAP_VTEPS), uint32_t(WEIR_MAP_VTEPS_SIZE));
  EXPECT_EQ((*obj)->map_max_entries(WEIR_MAP_TUN_JUMP), 1u);
}

TEST(TcVerifier, MapSizesCanBeOverriddenBeforeLoad) {
  ASSERT_TRUE(topology().ready) << topology().error;
  MapSizes s;
  s.ct = 1000;
  s.routes = 77;
  auto obj = TcObject::load(s);
  ASSERT_TRUE(obj.ok()) << obj.error().str();
  EXPECT_EQ((*obj)->map_max_entries(WEIR_MAP_CT), 1000u);
  EXPECT_EQ((*obj)->map_max_entries(WEIR_MAP_ROUTES), 77u);
}

}  // namespace
}  // namespace weir::test
