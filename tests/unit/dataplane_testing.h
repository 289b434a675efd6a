// Helpers for the unprivileged tests of the dataplane managers over fake maps
// (maps/fake_table.h).
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "calc/calc.h"
#include "calc/conntrack.h"
#include "dataplane/endpoint_manager.h"
#include "dataplane/kernel_routes.h"
#include "dataplane/policy_manager.h"
#include "dataplane/service_syncer.h"
#include "maps/fake_table.h"
#include "../common/ct_testing.h"

namespace weir::dataplane::test {

constexpr uint64_t kSec = 1000000000ull;
constexpr uint32_t kEstablished = WEIR_CT_LEG_SYN | WEIR_CT_LEG_ACK;

inline model::Ipv4 ip(const char* s) { return *model::Ipv4::parse(s); }

inline calc::Frontend frontend(const char* vip, uint16_t port, uint8_t proto,
                               std::vector<std::pair<const char*, uint16_t>> backends) {
  calc::Frontend fe;
  fe.key = calc::FrontendKey{ip(vip), port, proto};
  fe.service = std::string("default/svc:") + std::to_string(port);
  for (auto& [a, p] : backends) fe.backends.push_back(calc::Backend{ip(a), p});
  std::sort(fe.backends.begin(), fe.backends.end());
  return fe;
}

// (frontend key) -> (service id, sorted backends), read back from the fake maps; a frontend
// whose backends are incomplete has an empty list and a failed expectation.
using NatView = std::map<calc::FrontendKey, std::pair<uint32_t, std::vector<calc::Backend>>>;
inline NatView read_nat(const maps::FakeTables& m) {
  NatView out;
  auto fes = m.nat_fe.dump();
  EXPECT_TRUE(fes.ok());
  if (!fes) return out;
  for (auto& [k, v] : *fes) {
    std::vector<calc::Backend> bes;
    for (uint32_t i = 0; i < v.count; i++) {
      auto b = m.nat_be.peek(weir_nat_be_key{v.svc_id, i});
      EXPECT_TRUE(b.has_value()) << "backend " << v.svc_id << ":" << i << " missing";
      if (b) bes.push_back(calc::Backend{model::Ipv4::from_network_order(b->addr), ntohs(b->port)});
    }
    std::sort(bes.begin(), bes.end());
    out[from_map_key(k)] = {v.svc_id, bes};
  }
  return out;
}

// The same without service ids: what two ways of programming the same input must agree on.
inline std::map<calc::FrontendKey, std::vector<calc::Backend>> nat_content(const maps::FakeTables& m) {
  std::map<calc::FrontendKey, std::vector<calc::Backend>> out;
  for (auto& [k, v] : read_nat(m)) out[k] = v.second;
  return out;
}

using ct_testing::NatPair;
using ct_testing::nat_pair;

inline void insert(maps::FakeTables& m, const NatPair& p) {
  ASSERT_TRUE(m.ct.update(p.fwd_key, p.fwd).ok());
  ASSERT_TRUE(m.ct.update(p.rev_key, p.rev).ok());
}

inline uint64_t agent_deleted(const maps::FakeTables& m) {
  auto v = m.ct_stats.lookup(WEIR_CT_STATS_AGENT);
  uint64_t n = 0;
  if (v.ok() && v->has_value())
    for (const auto& s : **v) n += s.deleted;
  return n;
}

// Interfaces that exist because the test says so; attach/detach are recorded, not done.
class FakeInterfaces final : public InterfaceOps {
 public:
  std::map<std::string, bpf::LinkInfo> links;
  std::vector<std::string> calls;  // "attach weir1 ingress", "detach weir1 egress"
  int fail_attach_err = 0;

  void add(const std::string& name, int ifindex) {
    bpf::LinkInfo l;
    l.ifindex = ifindex;
    l.name = name;
    l.mac = {0xee, 0xee, 0xee, 0xee, 0xee, static_cast<uint8_t>(ifindex)};
    links[name] = l;
  }
  Result<bpf::LinkInfo> link_by_name(const std::string& name) override {
    auto it = links.find(name);
    if (it == links.end()) return Error{ENODEV, "no link " + name};
    return it->second;
  }
  Status attach(int ifindex, const std::string& name, bpf::TcDir dir) override {
    calls.push_back(fmt::format("attach {} {} {}", name, ifindex, dir == bpf::TcDir::Ingress ? "ingress" : "egress"));
    if (fail_attach_err) return Error{fail_attach_err, "attaching to " + name};
    return {};
  }
  Status detach(int ifindex, const std::string& name, bpf::TcDir dir) override {
    calls.push_back(fmt::format("detach {} {} {}", name, ifindex, dir == bpf::TcDir::Ingress ? "ingress" : "egress"));
    return {};
  }
  std::string mode() const override { return "fake"; }
};

// "Loads" a compiled policy as one placeholder fd per chunk (/dev/null): what the jump map then
// holds is that fd's number. Fails name patterns (policy_program_pattern) starting with
// fail_prefix, as a verifier would.
class FakeLoader : public PolicyLoader {
 public:
  std::string fail_prefix;
  std::vector<std::string> loaded;
  Result<polprog::LoadedPolicy> load(const polprog::CompiledPolicy& c, const polprog::PolicyMapFds&,
                                     const std::string& name) override {
    if (!fail_prefix.empty() && name.rfind(fail_prefix, 0) == 0)
      return Error{EACCES, "injected: the verifier rejected " + name};
    loaded.push_back(name);
    polprog::LoadedPolicy l;
    for (size_t i = 0; i < c.chunks.size(); i++) l.chunks.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    l.chunk_slots = c.chunk_slots;
    return l;
  }
};

// The main table's weir routes in memory, with the kernel's EEXIST for a destination that has
// any route (`foreign`: routes weir did not make), and injectable failures.
class FakeRouteTable final : public KernelRouteTable {
 public:
  std::map<model::Cidr, model::Ipv4> routes;   // weir's
  std::set<model::Cidr> foreign;               // others'
  std::set<model::Cidr> fail;                  // add/replace/remove of these fail with EIO
  int writes = 0;

  Result<std::vector<KernelRoute>> list() override {
    std::vector<KernelRoute> out;
    for (const auto& [d, v] : routes) out.push_back({d, v});
    return out;
  }
  Status add(const KernelRoute& r) override {
    if (fail.contains(r.dst)) return Error{EIO, "adding route " + r.str()};
    if (routes.contains(r.dst) || foreign.contains(r.dst)) return Error{EEXIST, "adding route " + r.str()};
    ++writes;
    routes[r.dst] = r.via;
    return {};
  }
  Status replace(const KernelRoute& r) override {
    if (fail.contains(r.dst)) return Error{EIO, "changing route " + r.str()};
    ++writes;
    routes[r.dst] = r.via;
    return {};
  }
  Status remove(const KernelRoute& r) override {
    if (fail.contains(r.dst)) return Error{EIO, "removing route " + r.str()};
    ++writes;
    routes.erase(r.dst);
    return {};
  }
};

}  // namespace weir::dataplane::test
