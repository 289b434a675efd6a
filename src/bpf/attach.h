// Attaching TC programs to interfaces: tcx (bpf_link, kernel 6.6+) where the kernel has it,
// else a clsact qdisc + cls_bpf filter in direct-action mode (kernel 6.1).
//
// Every function operates in the CALLING THREAD's network namespace (netlink sockets and
// BPF_LINK_CREATE resolve ifindex there), so the agent can run inside a node namespace.
//
// Invariant kept by tc_attach: after it returns successfully, the hook carries exactly one
// weir program (name starting with "weir_"): the one just attached. Programs of others are
// never touched. (The stale-filter incident: two generations of a CNI's program on one hook.)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace weir::bpf {

enum class TcMode { Tcx, Clsact };
enum class TcDir { Ingress, Egress };

std::string_view to_string(TcMode m);  // "tcx" / "clsact"
std::string_view to_string(TcDir d);   // "ingress" / "egress"

// weir's cls_bpf filter identity on a clsact hook: fixed, so re-attaching replaces in place.
inline constexpr uint32_t kWeirTcHandle = 0x1;
inline constexpr uint32_t kWeirTcPriority = 0xc0de;  // tc "pref"; 16-bit
// Programs whose name starts with this are weir's (cleanup and stale detection rely on it).
inline constexpr std::string_view kWeirProgPrefix = "weir_";

// Raw kernel constants libbpf 1.1 / linux 6.1 headers lack.
inline constexpr uint32_t kBpfTcxIngress = 46;  // BPF_TCX_INGRESS
inline constexpr uint32_t kBpfTcxEgress = 47;   // BPF_TCX_EGRESS
inline constexpr uint32_t kBpfLinkTypeTcx = 11; // BPF_LINK_TYPE_TCX
inline constexpr int kBpfLinkDetachCmd = 34;    // BPF_LINK_DETACH

// One BPF program found on a TC hook.
struct TcProgInfo {
  uint32_t prog_id = 0;
  std::string prog_name;     // kernel program name (bpf_prog_info.name, <= 15 chars)
  TcMode mode = TcMode::Tcx; // Tcx: attached via tcx (link or mprog); Clsact: a cls_bpf filter
  uint32_t link_id = 0;      // tcx: id of the bpf_link holding it (0 = attached without link)
  uint32_t priority = 0;     // clsact: tc pref; tcx: position in the tcx chain (0 = first)
  uint32_t handle = 0;       // clsact: filter handle; tcx: 0
  uint16_t protocol = 0;     // clsact: filter protocol (host order, ETH_P_ALL = 0x0003)
  bool direct_action = false;// clsact: filter in direct-action mode
  bool is_weir() const { return prog_name.rfind(kWeirProgPrefix, 0) == 0; }
};

// Decide how to attach TC programs on this kernel WITHOUT attaching anything: loads a trivial
// SCHED_CLS program and tries BPF_LINK_CREATE with BPF_TCX_INGRESS on an ifindex that cannot
// exist. ENODEV -> tcx supported; EINVAL -> no tcx (clsact). Logs the result. Any other error
// (e.g. EPERM when not root) is returned as an Error. The result is logged at debug level (the
// caller logs the mode it chose; info-level logs would pollute `weir bpf version --json`).
Result<TcMode> probe_tc_mode();

// Attach `prog_fd` to (ifindex, dir). Idempotent and atomic:
//  tcx:    if a link pinned at `link_pin_path` is still attached to this hook, its program is
//          replaced with BPF_LINK_UPDATE (no window without a program); otherwise a new link
//          is created and pinned at `link_pin_path` (a stale pin there is replaced).
//  clsact: the clsact qdisc is created if missing, then the filter (kWeirTcHandle,
//          kWeirTcPriority) is created or atomically replaced (BPF_TC_F_REPLACE).
//          `link_pin_path` is unused.
// In both modes every OTHER weir program on the hook (another cls_bpf weir_* filter, another
// tcx weir_* link or program) is then removed. Non-weir programs are left alone.
// `ifname` is used in messages only.
Status tc_attach(int ifindex, const std::string& ifname, TcDir dir, int prog_fd, TcMode mode,
                 const std::string& link_pin_path);

// Remove weir's attachment from (ifindex, dir): tcx: the link pinned at `link_pin_path` is
// detached (BPF_LINK_DETACH) and unpinned; clsact: weir's filter is deleted, and the clsact
// qdisc too when no filter is left in either direction. Absent attachment / interface is not
// an error (idempotent); clsact mode with ifindex <= 0 (interface gone) does nothing. Does not
// touch other weir programs (see tc_detach_all_weir).
Status tc_detach(int ifindex, TcDir dir, TcMode mode, const std::string& link_pin_path);

// Remove EVERY weir_* program from (ifindex, dir), whatever mode or pin attached it (tcx
// links are detached through their id, tcx programs without link via BPF_PROG_DETACH,
// cls_bpf weir_* filters deleted); then delete the clsact qdisc if it has no filter left in
// either direction. Returns what was removed. Used by `weir bpf cleanup`.
Result<std::vector<TcProgInfo>> tc_detach_all_weir(int ifindex, TcDir dir);

// Every BPF program on (ifindex, dir): tcx programs (BPF_PROG_QUERY, in chain order) then
// cls_bpf filters on the clsact hook (RTM_GETTFILTER dump, sorted by priority). An interface
// without clsact qdisc simply has no cls_bpf entries. Unknown ifindex -> Error (ENODEV).
Result<std::vector<TcProgInfo>> tc_list(int ifindex, TcDir dir);

// True when a clsact qdisc exists on `ifindex` (RTM_GETQDISC dump).
Result<bool> has_clsact(int ifindex);

// What a tcx link fd points at (bpf_link_info, 6.6+ tcx layout).
struct TcxLinkInfo {
  uint32_t link_id = 0;
  uint32_t prog_id = 0;
  int ifindex = 0;         // 0 once the interface is gone (link defunct)
  TcDir dir = TcDir::Ingress;
};
// Info of a tcx link; nullopt when `link_fd` is a link of another type.
Result<std::optional<TcxLinkInfo>> tcx_link_info(int link_fd);
// BPF_LINK_DETACH: detach the link from its hook now (whoever else holds it). Detaching an
// already detached link is not an error.
Status link_detach(int link_fd);

// Move-only guard: the attachment is removed (tc_detach) on destruction unless release()d.
// For tests and for callers that want detach-on-destruction; the agent release()s, since
// its programs stay attached after it exits (links are pinned).
class TcAttachment {
 public:
  TcAttachment() = default;
  TcAttachment(TcAttachment&& o) noexcept;
  TcAttachment& operator=(TcAttachment&& o) noexcept;
  TcAttachment(const TcAttachment&) = delete;
  TcAttachment& operator=(const TcAttachment&) = delete;
  ~TcAttachment();  // detaches; a failure is logged (warn), never thrown

  // tc_attach(...) and return a guard owning the attachment.
  static Result<TcAttachment> attach(int ifindex, const std::string& ifname, TcDir dir,
                                     int prog_fd, TcMode mode, const std::string& link_pin_path);

  // Detach now (idempotent); the guard then owns nothing.
  Status detach();
  // Keep the attachment in the kernel; the guard then owns nothing.
  void release();
  bool active() const { return active_; }
  int ifindex() const { return ifindex_; }
  TcDir dir() const { return dir_; }
  TcMode mode() const { return mode_; }

 private:
  void detach_or_warn() noexcept;  // for the destructor and operator=: a failure is logged

  int ifindex_ = 0;
  std::string ifname_;
  TcDir dir_ = TcDir::Ingress;
  TcMode mode_ = TcMode::Tcx;
  std::string link_pin_path_;
  bool active_ = false;
};

}  // namespace weir::bpf
