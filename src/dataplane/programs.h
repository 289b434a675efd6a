// The TC programs and maps as the agent loads them: the embedded object (bpf/tc.bpf.c) with
// every map pinned under the pin root, so that a restarted or upgraded agent adopts the maps
// of the previous one (and with them every established flow, and every policy program still
// in the pinned jump map).
//
// Policy: after the load, the two continuations of the object (weir_from_wl_pol,
// weir_to_wl_pol) are written into jump slots WEIR_JUMP_FROM_WL_POLICY_DONE and
// WEIR_JUMP_TO_WL_POLICY_DONE (each slot update replaces the previous agent's program
// atomically). Policy programs are installed by the policy manager (dataplane/policy_slots.h).
//
// VXLAN: the encapsulation program (weir_vxlan_encap) is written into weir_tun_jump1 slot
// WEIR_TUN_JUMP_VXLAN_ENCAP the same way; weir_from_ul (from_ul_fd()) is for the agent to attach
// to the tc ingress of the underlay interface; set_tunnel / set_vteps write the configuration
// (dataplane/tunnel.h).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/tunnel.h"
#include "maps/pin_layout.h"
#include "maps/weir_maps.h"
#include "model/resources.h"
#include "polprog/compiler.h"
#include "util/result.h"

namespace weir::dataplane {

// The size the configuration asks for map `m`: the model::MapSizes field the table names
// (WEIR_MAPS' last column), or the table's default for a map whose size is not configurable.
uint32_t configured_size(const maps::MapSpec& m, const model::MapSizes& sizes);

// A map as the BPF object declares it (TcPrograms::declared_maps).
struct ObjectMap {
  std::string name;
  uint32_t type = 0, key_size = 0, value_size = 0, max_entries = 0, flags = 0;
};

class TcPrograms {
 public:
  // The builds of bpf/tc.bpf.c: the production object, which carries no logging nor timing
  // instruction; the log variant (-DWEIR_LOG=1, docs/bpf-log.md), whose programs write the
  // packet's path to the kernel trace buffer as weir_logif1 asks (DataplaneConfig bpfLogLevel);
  // the profiling build (-DWEIR_PROFILE=1, docs/profiling.md), whose programs time each packet
  // (bpfProfiling); and one with both. All have the same programs, maps and semantics. The
  // trace build (-DWEIR_TRACE=1, docs/bpf-trace.md) is `weir bpf trace`'s: the log's statements
  // for every packet, and no side effect on the maps (no entry created, nothing counted).
  enum class Variant { Production, Log, Profile, LogProfile, Trace };
  struct Impl;

  TcPrograms(TcPrograms&&) noexcept;
  TcPrograms& operator=(TcPrograms&&) noexcept;
  ~TcPrograms();

  // Opens the embedded object, sizes the maps, points every map at its pin under
  // layout.maps_dir() and loads. A map already pinned there is reused as it is: when its size
  // differs from `sizes`, the pinned size wins (a warning says that the new size takes effect
  // after `weir bpf cleanup`), because recreating it would drop every tracked flow.
  // The pin root gets weir's marker first (maps::write_pin_marker).
  static Result<TcPrograms> load(const maps::PinLayout& layout, const model::MapSizes& sizes,
                                 Variant variant = Variant::Production);
  // The trace build over the maps an agent pinned under `layout` (`weir bpf trace`,
  // docs/bpf-trace.md): every map must be pinned there already (none is created), nothing is
  // written but the trace build's continuations into weir_trjmp1. ENOENT when a map is missing.
  static Result<TcPrograms> load_trace(const maps::PinLayout& layout);
  Variant variant() const;
  // The ELF object of a variant as weir embeds it (what the tests inspect instruction by
  // instruction).
  static Result<std::vector<uint8_t>> object_bytes(Variant variant);

  // The type (enum bpf_map_type) of every map of the embedded object, by name. Opens the
  // object without loading anything: what `weir bpf cleanup` checks a pin under maps/ against.
  static Result<std::map<std::string, uint32_t>> map_types();
  // Every map the embedded object declares, as the object declares it (type, key and value
  // size from BTF, default max_entries, flags). Opens the object without loading anything (no
  // privileges needed): what the map table's consistency test compares the table against.
  static Result<std::vector<ObjectMap>> declared_maps();

  int from_wl_fd() const;  // weir_from_wl: tc ingress of a workload's host-side veth
  int to_wl_fd() const;    // weir_to_wl: tc egress of a workload's host-side veth
  int from_wl_pol_fd() const;  // weir_from_wl_pol: jump slot WEIR_JUMP_FROM_WL_POLICY_DONE
  int to_wl_pol_fd() const;    // weir_to_wl_pol: jump slot WEIR_JUMP_TO_WL_POLICY_DONE
  int vxlan_encap_fd() const;  // weir_vxlan_encap: weir_tun_jump1 slot WEIR_TUN_JUMP_VXLAN_ENCAP
  int from_ul_fd() const;      // weir_from_ul: tc ingress of the node's underlay interface
  // Every map of the object (borrowed fds, valid while this object lives), by table id.
  const maps::MapFds& map_fds() const;
  maps::WeirMaps& maps() { return *maps_; }
  maps::PolicyMaps& policy_maps() { return *policy_; }
  maps::TunnelMaps& tunnel_maps() { return *tunnel_; }
  maps::LogMaps& log_maps() { return *log_; }
  // The fds a generated policy program is relocated against (polprog::load). Borrowed: valid
  // while this object lives.
  polprog::PolicyMapFds policy_map_fds() const;

  // (Re)writes the continuations into jump slots 0 and 1 and the encapsulation program into
  // weir_tun_jump1; for the log variant, also its main programs into weir_logjmp1's entry slots
  // (where the pcap filters return). load() does it; exposed for repair.
  Status install_continuations();
  // Empties weir_logjmp1's entry slots, releasing the log variant's programs the slots keep
  // loaded: once the production build is on every hook, no packet can need them.
  Status clear_log_entries();

  // dataplane::set_tunnel / set_vteps (dataplane/tunnel.h) on this object's maps.
  Status set_tunnel(const TunnelConfig& c);
  Status set_vteps(const std::vector<model::Ipv4>& nodes);

 private:
  // The typed views over a loaded object's maps, then its continuations written.
  static Result<TcPrograms> with_maps(std::unique_ptr<Impl> impl);
  TcPrograms(std::unique_ptr<Impl> impl, std::unique_ptr<maps::WeirMaps> m,
             std::unique_ptr<maps::PolicyMaps> p, std::unique_ptr<maps::TunnelMaps> t,
             std::unique_ptr<maps::LogMaps> l);
  std::unique_ptr<Impl> impl_;
  std::unique_ptr<maps::WeirMaps> maps_;
  std::unique_ptr<maps::PolicyMaps> policy_;
  std::unique_ptr<maps::TunnelMaps> tunnel_;
  std::unique_ptr<maps::LogMaps> log_;
};

// "production", "log", "profiling", "log and profiling" or "trace".
const char* to_string(TcPrograms::Variant v);
// Whether the build has the log's statements / the profiling's timing.
bool logs(TcPrograms::Variant v);
bool profiles(TcPrograms::Variant v);
// The build with the log and/or profiling.
TcPrograms::Variant variant_of(bool log, bool profile);

}  // namespace weir::dataplane
