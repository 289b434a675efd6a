// EndpointManager: makes the workload interfaces of this node carry weir's TC programs, and
// keeps the ifstate and routes maps in step with the WorkloadEndpoints.
//
// For each local workload interface: ifstate[ifindex] and the /32 routes are written first,
// then weir_from_wl is attached to the tc ingress and weir_to_wl to the tc egress of the
// host-side veth (tcx links pinned under <pin root>/links, or clsact filters), then the
// interface is marked ready. Attaching replaces a previous program atomically (agent restart
// or upgrade), never leaving a second weir program on the hook. An interface named by a
// WorkloadEndpoint that does not exist yet is retried at every sync. A new interface has no
// policy (WEIR_NO_POLICY_SLOT both ways); re-attaching an interface a previous agent programmed
// keeps its policy slots (the policy programs live on in the pinned jump map).
#pragma once

#include <array>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "bpf/attach.h"
#include "bpf/netlink.h"
#include "calc/calc.h"
#include "maps/pin_layout.h"
#include "maps/table.h"
#include "util/result.h"

namespace weir::dataplane {

// What the endpoint manager asks of the kernel besides maps: which interfaces exist, and weir's
// TC programs on their hooks. TcInterfaces does it for real; unit tests replace it.
class InterfaceOps {
 public:
  virtual ~InterfaceOps() = default;
  // bpf::link_by_name: Error{ENODEV} when the interface does not exist.
  virtual Result<bpf::LinkInfo> link_by_name(const std::string& name) = 0;
  // Attaches weir_from_wl (Ingress) or weir_to_wl (Egress) to the interface (bpf::tc_attach).
  virtual Status attach(int ifindex, const std::string& name, bpf::TcDir dir) = 0;
  // Removes weir's program from the hook (bpf::tc_detach); ifindex 0: the interface is gone.
  virtual Status detach(int ifindex, const std::string& name, bpf::TcDir dir) = 0;
  // For logs: "tcx" or "clsact".
  virtual std::string mode() const = 0;
};

// The kernel's InterfaceOps: netlink, and tc_attach/tc_detach with links pinned in `layout`.
class TcInterfaces final : public InterfaceOps {
 public:
  TcInterfaces(maps::PinLayout layout, bpf::TcMode mode, int from_wl_fd, int to_wl_fd)
      : layout_(std::move(layout)), mode_(mode), from_fd_(from_wl_fd), to_fd_(to_wl_fd) {}
  Result<bpf::LinkInfo> link_by_name(const std::string& name) override;
  Status attach(int ifindex, const std::string& name, bpf::TcDir dir) override;
  Status detach(int ifindex, const std::string& name, bpf::TcDir dir) override;
  std::string mode() const override { return std::string(bpf::to_string(mode_)); }
  // The programs attach() attaches from now on (borrowed fds: another build of the programs,
  // docs/bpf-log.md); what is attached already stays until attached again.
  void set_programs(int from_wl_fd, int to_wl_fd) {
    from_fd_ = from_wl_fd;
    to_fd_ = to_wl_fd;
  }

 private:
  maps::PinLayout layout_;
  bpf::TcMode mode_;
  int from_fd_;
  int to_fd_;
};

class EndpointManager {
 public:
  // Writes m.ifstate, m.routes and (removing) m.counters; `ifs` is borrowed and must outlive
  // this.
  EndpointManager(maps::CoreTables m, InterfaceOps& ifs) : maps_(m), ifs_(ifs) {}

  // Reads the interfaces and routes a previous agent programmed. Their programs are replaced
  // by this agent's at the first apply(); interfaces no longer wanted are then detached.
  Status adopt();

  // Runs between writing the ifstate entries of new interfaces and attaching programs to them
  // (see apply()). An error means the policy of some new interface could not be put in place
  // (not even fail-closed deny-all): then no new interface is attached by this apply(); they
  // keep their ifstate entry without READY and are retried at the next apply() (has_pending()).
  using BeforeAttach = std::function<Status()>;

  // Makes interfaces, their programs and the routes match `interfaces` / `routes`.
  // Failures on one interface are logged (naming the workload) and do not stop the others.
  // `before_attach`, when given, runs once per call after the ifstate entries of new
  // interfaces are written (ifindex_of() knows them) and before any program is attached to
  // them: the agent installs policy there, so a new workload's first packet already meets its
  // policy (or the deny-all of a policy that failed). Interfaces no longer wanted are detached
  // after it.
  Status apply(const std::vector<calc::Interface>& interfaces,
               const std::vector<calc::Route>& routes, const BeforeAttach& before_attach = {});

  // Interfaces named by a WorkloadEndpoint that do not exist (yet): apply() again later.
  bool has_pending() const { return !pending_.empty(); }

  // The programs to attach changed (TcInterfaces::set_programs): every interface attached so
  // far is attached again by the next apply(), as an adopted one is after a restart (its
  // policy slots kept, each hook's program replaced in one step: tcx link update or tc filter
  // replace, no packet without a program).
  void readopt();
  size_t managed() const { return attached_.size(); }
  // ifindex of a workload interface this agent attached, 0 when not (yet) attached: the key of
  // its ifstate entry, for dataplane::set_policy_slot.
  // Also the ifindex of an interface being attached (inside apply()'s before_attach).
  int ifindex_of(const std::string& name) const {
    auto it = attached_.find(name);
    if (it != attached_.end()) return it->second.ifindex;
    auto p = preparing_.find(name);
    return p == preparing_.end() ? 0 : p->second.ifindex;
  }

 private:
  struct Managed {
    int ifindex = 0;
    std::string name;
  };
  Status prepare(const calc::Interface& itf, int ifindex, const std::array<uint8_t, 6>& host_mac);
  Status attach(const calc::Interface& itf, int ifindex);
  Status detach(const Managed& m);
  Status forget(const Managed& m);
  Status sync_routes(const std::vector<calc::Route>& routes);

  maps::CoreTables maps_;
  InterfaceOps& ifs_;
  std::map<std::string, Managed> attached_;  // by interface name: attached by THIS agent
  std::map<std::string, Managed> adopted_;   // by interface name: found in ifstate at start
  std::set<std::string> pending_;            // wanted but missing
  std::map<std::string, Managed> preparing_;  // ifstate written, programs not attached yet
  std::map<std::string, Managed> held_;  // ifstate written, not attached: before_attach failed
  std::set<std::pair<uint32_t, uint32_t>> programmed_routes_;  // (addr_be, prefixlen)
};

}  // namespace weir::dataplane
