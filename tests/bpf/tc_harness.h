// Harness for the TC datapath (bpf/tc.bpf.c): a private network namespace with veth pairs (so
// that BPF_PROG_TEST_RUN accepts their ifindexes) and a private bpffs, the object loaded by the
// agent's own loader (dataplane::TcPrograms::load: sizes, pins, continuations) under a pin root
// of that bpffs, typed access to its maps, and a test-run wrapper. Linked into weir_bpf_tests
// and weir_bench (tests/bpf/tc_harness.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dataplane/programs.h"
#include "maps/map_table.h"
#include "util/result.h"
#include "weir/conntrack.h"
#include "weir/counters.h"
#include "weir/ifstate.h"
#include "weir/nat.h"
#include "weir/routes.h"

namespace weir::test {

// Moves the calling process into a new, empty network namespace and a mount namespace of its own
// (unshare(CLONE_NEWNET | CLONE_NEWNS), "/" made a recursive slave) with a new bpffs mounted on
// /tmp/weir-tcobj-<pid>, where TcObject pins its maps. Both disappear with the process (the
// empty directory is removed at exit). Must run before any other thread exists. Fails (with
// errno) when not root; nothing in the namespaces the process started in is touched.
Status enter_private_netns();

// Creates a veth pair in the current network namespace; returns (ifindex of name, of peer).
Result<std::pair<uint32_t, uint32_t>> add_veth(const std::string& name, const std::string& peer);

struct TestRun {
  int retval = 0;              // the program's return code (TC_ACT_*)
  std::vector<uint8_t> out;    // the packet after the program
  uint32_t duration_ns = 0;    // kernel-measured average per repetition
  uint32_t mark = 0;           // skb->mark after the program
};

// Map sizes for a test load; nullopt fields keep the compiled-in default (WEIR_MAP_*_SIZE).
struct MapSizes {
  std::optional<uint32_t> nat_fe, nat_be, ct, routes, ifstate, counters;
  // Small maps: fast to create and free, plenty for test vectors.
  static MapSizes small() { return MapSizes{1024, 1024, 8192, 1024, 64, 256}; }
  static MapSizes defaults() { return MapSizes{}; }
  bool operator==(const MapSizes&) const = default;
};

// FromWlPol / ToWlPol: the policy continuations (jump slots 0 and 1, written by load()).
// VxlanEncap: weir_tun_jump1's program (tail-called by from_wl); FromUl: the underlay's ingress.
enum class Prog { FromWl, ToWl, FromWlPol, ToWlPol, VxlanEncap, FromUl };

// The most instructions the verifier may process for any TC program of either build (production
// or log variant) or a generated policy program: a quarter of BPF_COMPLEXITY_LIMIT_INSNS
// (1,000,000), so that a program that grows is caught long before a kernel refuses it.
inline constexpr uint32_t kVerifiedInsnsBudget = 250'000;

class TcObject {
 public:
  // Loads the object with the agent's loader (dataplane::TcPrograms::load) under a new pin root
  // of the private bpffs (maps sized and pinned, marker written, policy continuations in jump
  // slots 0 and 1). The error carries errno and the verifier log's tail.
  static Result<std::unique_ptr<TcObject>> load(
      const MapSizes& sizes, dataplane::TcPrograms::Variant variant = dataplane::TcPrograms::Variant::Production);
  // The process's object of these sizes: loaded on first use, reset() on every later one, so
  // that each test starts from empty maps without paying the verifier again (~1 s on 6.18,
  // 15-40 s on Debian 12's 6.1 under qemu TCG, where scripts/test-kernel.sh runs the tests of a
  // suite in one process). Valid until the process exits.
  static Result<TcObject*> shared(
      const MapSizes& sizes, dataplane::TcPrograms::Variant variant = dataplane::TcPrograms::Variant::Production);
  // Empties every map as a fresh load has them: every key of the hash, LRU, LPM-trie and
  // per-CPU hash maps deleted, arrays zeroed, the jump table emptied and the two policy
  // continuations written back. The read-only data section is left alone.
  Status reset();
  ~TcObject() = default;
  TcObject(const TcObject&) = delete;
  TcObject& operator=(const TcObject&) = delete;

  int prog_fd(Prog p) const;
  dataplane::TcPrograms& programs() { return progs_; }
  const maps::PinLayout& layout() const { return layout_; }
  int map_fd(const std::string& name) const;
  // Every map's fd (borrowed), for maps::WeirMaps::from_fds / PolicyMaps::from_fds.
  maps::MapFds map_fds() const;
  // The fds a policy program is relocated against (polprog::load), borrowed.
  polprog::PolicyMapFds policy_map_fds() const;
  uint32_t map_max_entries(const std::string& name) const;
  // Instruction count of a loaded program (from bpf_prog_info).
  Result<uint32_t> prog_insns(Prog p) const;

  // BPF_PROG_TEST_RUN with __sk_buff.ifindex = ifindex (must exist in this netns) and mark.
  Result<TestRun> run(Prog p, uint32_t ifindex, const std::vector<uint8_t>& pkt, int repeat = 1,
                      uint32_t mark = 0) const;

  // --- typed map access (keys and values are the shared types of bpf/include/weir) ---
  Status put_frontend(uint32_t vip, uint16_t port_host, uint8_t proto, const weir_nat_fe_val& v);
  Status put_backend(uint32_t svc_id, uint32_t ordinal, uint32_t addr, uint16_t port_host);
  Status put_route(uint32_t addr, uint32_t prefixlen, const weir_route_val& v);
  Status put_ifstate(uint32_t ifindex, const weir_ifstate_val& v);
  std::optional<weir_ct_val> ct_get(const weir_ct_key& k) const;
  Status ct_put(const weir_ct_key& k, const weir_ct_val& v);
  std::vector<std::pair<weir_ct_key, weir_ct_val>> ct_all() const;
  Status ct_clear();
  // Counters of (ifindex, hook) summed over CPUs; all zero when the entry does not exist.
  weir_counters_val counters(uint32_t ifindex, uint32_t hook) const;
  Status counters_clear();
  std::vector<weir_counters_key> counter_keys() const;

 private:
  TcObject(maps::PinLayout layout, dataplane::TcPrograms progs)
      : layout_(std::move(layout)), progs_(std::move(progs)) {}
  maps::PinLayout layout_;
  dataplane::TcPrograms progs_;
};

// Normalised conntrack key, computed independently of the BPF code (same rule: side A is the
// (addr, port) that compares lower as raw network-order values). Ports in host order.
// Returns the key and whether (saddr, sport) is side A.
std::pair<weir_ct_key, bool> ct_key(uint32_t saddr, uint16_t sport, uint32_t daddr, uint16_t dport,
                                    uint8_t proto);

}  // namespace weir::test
