// Harness for the TC datapath (bpf/tc.bpf.c): a private network namespace with veth pairs (so
// that BPF_PROG_TEST_RUN accepts their ifindexes), the weir_tc skeleton loaded without
// pinning, typed access to its maps, and a test-run wrapper.
//
// Definitions are in tc_harness_impl.h, which exactly one translation unit per binary includes
// (tests/bpf/tc_harness.cpp for weir_bpf_tests, bench/tc_bench.cpp for weir_bench): the
// generated skeleton embeds the whole object file and must not be duplicated.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "util/result.h"
#include "weir/conntrack.h"
#include "weir/counters.h"
#include "weir/ifstate.h"
#include "weir/nat.h"
#include "weir/routes.h"

struct weir_tc;  // bpftool skeleton (gen/tc.skel.h)

namespace weir::test {

// Moves the calling process into a new, empty network namespace (unshare(CLONE_NEWNET)); it
// disappears with the process. Must run before any other thread exists. Fails (with errno) when not
// root; nothing in the namespace the process started in is touched.
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
};

// FromWlPol / ToWlPol: the policy continuations (jump slots 0 and 1, written by load()).
enum class Prog { FromWl, ToWl, FromWlPol, ToWlPol };

class TcObject {
 public:
  // Opens the embedded object, applies the sizes, loads it through the verifier and writes the
  // policy continuations into jump slots 0 and 1 (as the agent's loader does). The error
  // carries errno and the program names; libbpf prints the verifier log to stderr.
  static Result<std::unique_ptr<TcObject>> load(const MapSizes& sizes);
  ~TcObject();
  TcObject(const TcObject&) = delete;
  TcObject& operator=(const TcObject&) = delete;

  int prog_fd(Prog p) const;
  int map_fd(const std::string& name) const;
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
  explicit TcObject(weir_tc* skel) : skel_(skel) {}
  weir_tc* skel_;
};

// Normalised conntrack key, computed independently of the BPF code (same rule: side A is the
// (addr, port) that compares lower as raw network-order values). Ports in host order.
// Returns the key and whether (saddr, sport) is side A.
std::pair<weir_ct_key, bool> ct_key(uint32_t saddr, uint16_t sport, uint32_t daddr, uint16_t dport,
                                    uint8_t proto);

}  // namespace weir::test
