#include "bpf/attach.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/netlink.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>

#include <spdlog/spdlog.h>

#include "bpf/bpffs.h"
#include "bpf/netlink.h"
#include "util/fd.h"

namespace weir::bpf {

std::string_view to_string(TcMode m) { return m == TcMode::Tcx ? "tcx" : "clsact"; }
std::string_view to_string(TcDir d) { return d == TcDir::Ingress ? "ingress" : "egress"; }

namespace {

// ------------------------------------------------------------------ raw bpf(2)
// libbpf 1.1 and the 6.1 uapi headers predate tcx: the attrs below follow the 6.6+ layout.

long sys_bpf(int cmd, void* attr, unsigned int size) {
  return syscall(__NR_bpf, cmd, attr, size);
}

struct LinkCreateAttr {  // union bpf_attr.link_create (tcx variant)
  __u32 prog_fd;
  __u32 target_ifindex;
  __u32 attach_type;
  __u32 flags;
  __u32 relative_fd;
  __u32 pad;
  __u64 expected_revision;
};
static_assert(sizeof(LinkCreateAttr) == 32);

struct QueryAttr {  // union bpf_attr.query (6.6+)
  __u32 target_ifindex;
  __u32 attach_type;
  __u32 query_flags;
  __u32 attach_flags;
  __aligned_u64 prog_ids;
  __u32 count;
  __u32 pad;
  __aligned_u64 prog_attach_flags;
  __aligned_u64 link_ids;
  __aligned_u64 link_attach_flags;
  __u64 revision;
};
static_assert(sizeof(QueryAttr) == 64);

struct LinkDetachAttr {
  __u32 link_fd;
};

struct RawLinkInfo {  // struct bpf_link_info with the 6.6+ tcx union member
  __u32 type;
  __u32 id;
  __u32 prog_id;
  __u32 pad;
  union {
    struct {
      __u32 ifindex;
      __u32 attach_type;
    } tcx;
    __u8 raw[64];
  };
};

uint32_t tcx_attach_type(TcDir d) { return d == TcDir::Ingress ? kBpfTcxIngress : kBpfTcxEgress; }
uint32_t clsact_parent(TcDir d) {
  return TC_H_MAKE(TC_H_CLSACT, d == TcDir::Ingress ? TC_H_MIN_INGRESS : TC_H_MIN_EGRESS);
}
enum bpf_tc_attach_point tc_point(TcDir d) { return d == TcDir::Ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS; }

// Name of program `id`, nullopt when it no longer exists.
Result<std::optional<std::string>> prog_name_by_id(uint32_t id) {
  int fd = bpf_prog_get_fd_by_id(id);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<std::string>{};
    return errno_error(fmt::format("opening program id {}", id));
  }
  Fd owner(fd);
  struct bpf_prog_info info {};
  __u32 len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0)
    return errno_error(fmt::format("reading info of program id {}", id));
  return std::optional<std::string>{std::string(info.name)};
}

Result<RawLinkInfo> link_info(int link_fd) {
  RawLinkInfo info{};
  __u32 len = sizeof(info);
  if (bpf_obj_get_info_by_fd(link_fd, &info, &len) != 0)
    return errno_error(fmt::format("reading info of link fd {}", link_fd));
  return info;
}

struct TcxEntry {
  uint32_t prog_id;
  uint32_t link_id;
};

// BPF_PROG_QUERY on a tcx hook. nullopt when the kernel has no tcx (EINVAL).
Result<std::optional<std::vector<TcxEntry>>> tcx_query(int ifindex, TcDir dir) {
  for (int attempt = 0; attempt < 5; attempt++) {
    QueryAttr q{};
    q.target_ifindex = static_cast<__u32>(ifindex);
    q.attach_type = tcx_attach_type(dir);
    if (sys_bpf(BPF_PROG_QUERY, &q, sizeof(q)) != 0) {
      if (errno == EINVAL) return std::optional<std::vector<TcxEntry>>{};
      return errno_error(fmt::format("querying tcx {} programs of ifindex {}", to_string(dir), ifindex));
    }
    uint32_t n = q.count;
    if (n == 0) return std::optional<std::vector<TcxEntry>>{std::vector<TcxEntry>{}};
    std::vector<__u32> progs(n + 4), links(n + 4);
    QueryAttr q2{};
    q2.target_ifindex = static_cast<__u32>(ifindex);
    q2.attach_type = tcx_attach_type(dir);
    q2.prog_ids = reinterpret_cast<uintptr_t>(progs.data());
    q2.link_ids = reinterpret_cast<uintptr_t>(links.data());
    q2.count = static_cast<__u32>(progs.size());
    if (sys_bpf(BPF_PROG_QUERY, &q2, sizeof(q2)) != 0) {
      if (errno == ENOSPC) continue;  // programs were added meanwhile
      return errno_error(fmt::format("querying tcx {} programs of ifindex {}", to_string(dir), ifindex));
    }
    std::vector<TcxEntry> out;
    for (uint32_t i = 0; i < q2.count && i < progs.size(); i++) out.push_back({progs[i], links[i]});
    return std::optional<std::vector<TcxEntry>>{std::move(out)};
  }
  return Error{EAGAIN, fmt::format("tcx hook of ifindex {} keeps changing", ifindex)};
}

Status link_detach_fd(int link_fd, const std::string& what) {
  LinkDetachAttr a{};
  a.link_fd = static_cast<__u32>(link_fd);
  if (sys_bpf(kBpfLinkDetachCmd, &a, sizeof(a)) != 0 && errno != ENOLINK && errno != ENOENT)
    return errno_error("detaching " + what);
  return {};
}

Status link_detach_id(uint32_t link_id) {
  int fd = bpf_link_get_fd_by_id(link_id);
  if (fd < 0) {
    if (errno == ENOENT) return {};
    return errno_error(fmt::format("opening link id {}", link_id));
  }
  Fd owner(fd);
  return link_detach_fd(fd, fmt::format("link id {}", link_id));
}

Status tcx_prog_detach(int ifindex, TcDir dir, uint32_t prog_id) {
  int fd = bpf_prog_get_fd_by_id(prog_id);
  if (fd < 0) {
    if (errno == ENOENT) return {};
    return errno_error(fmt::format("opening program id {}", prog_id));
  }
  Fd owner(fd);
  if (bpf_prog_detach2(fd, ifindex, static_cast<enum bpf_attach_type>(tcx_attach_type(dir))) != 0 &&
      errno != ENOENT)
    return errno_error(fmt::format("detaching tcx program id {} from ifindex {}", prog_id, ifindex));
  return {};
}

// ------------------------------------------------------------------ raw rtnetlink (tc)

// tc messages over the one rtnetlink client (bpf/netlink.h).
NlMsg tc_msg(uint16_t type, uint16_t flags, const struct tcmsg& t) {
  return NlMsg(type, flags, &t, sizeof(t));
}

struct ClsBpfFilter {
  uint32_t prio = 0;
  uint16_t protocol = 0;  // host order
  uint32_t handle = 0;
  uint32_t chain = 0;
  uint32_t prog_id = 0;
  std::string name;       // TCA_BPF_NAME
  bool direct_action = false;
};

// The cls_bpf options (TCA_OPTIONS) of a filter: program id, name, direct-action flag.
void read_cls_bpf_options(const struct rtattr* opts, ClsBpfFilter& f) {
  for_each_attr(RTA_DATA(opts), static_cast<int>(RTA_PAYLOAD(opts)), [&](const rtattr* o) {
    if (o->rta_type == TCA_BPF_ID && RTA_PAYLOAD(o) >= 4) {
      std::memcpy(&f.prog_id, RTA_DATA(o), 4);
    } else if (o->rta_type == TCA_BPF_NAME) {
      f.name = attr_string(o);
    } else if (o->rta_type == TCA_BPF_FLAGS && RTA_PAYLOAD(o) >= 4) {
      uint32_t fl = 0;
      std::memcpy(&fl, RTA_DATA(o), 4);
      f.direct_action = (fl & TCA_BPF_FLAG_ACT_DIRECT) != 0;
    }
  });
}

// Every cls_bpf filter (with a program) on the clsact hook `dir` of `ifindex`.
Result<std::vector<ClsBpfFilter>> dump_cls_bpf(Netlink& nl, int ifindex, TcDir dir) {
  struct tcmsg t {};
  t.tcm_family = AF_UNSPEC;
  t.tcm_ifindex = ifindex;
  t.tcm_parent = clsact_parent(dir);
  auto m = tc_msg(RTM_GETTFILTER, 0, t);
  std::vector<ClsBpfFilter> out;
  auto st = nl.request(
      m, true,
      [&](const struct nlmsghdr* h) {
        if (h->nlmsg_type != RTM_NEWTFILTER) return;
        const auto* tm = static_cast<const struct tcmsg*>(NLMSG_DATA(h));
        if (tm->tcm_ifindex != ifindex) return;
        ClsBpfFilter f;
        f.prio = TC_H_MAJ(tm->tcm_info) >> 16;
        f.protocol = ntohs(static_cast<uint16_t>(TC_H_MIN(tm->tcm_info)));
        f.handle = tm->tcm_handle;
        std::string kind;
        for_each_attr(h, sizeof(*tm), [&](const rtattr* a) {
          if (a->rta_type == TCA_KIND)
            kind = attr_string(a);
          else if (a->rta_type == TCA_CHAIN && RTA_PAYLOAD(a) >= 4)
            std::memcpy(&f.chain, RTA_DATA(a), 4);
          else if (a->rta_type == TCA_OPTIONS)
            read_cls_bpf_options(a, f);
        });
        if (kind == "bpf" && f.prog_id != 0) out.push_back(std::move(f));
      },
      fmt::format("dumping tc {} filters of ifindex {}", to_string(dir), ifindex));
  if (!st) return st.error();
  return out;
}

Status delete_cls_filter(Netlink& nl, int ifindex, TcDir dir, const ClsBpfFilter& f) {
  struct tcmsg t {};
  t.tcm_family = AF_UNSPEC;
  t.tcm_ifindex = ifindex;
  t.tcm_parent = clsact_parent(dir);
  t.tcm_handle = f.handle;
  t.tcm_info = TC_H_MAKE(f.prio << 16, htons(f.protocol));
  auto m = tc_msg(RTM_DELTFILTER, 0, t);
  m.add_attr(TCA_KIND, "bpf", 4);
  if (f.chain != 0) m.add_attr(TCA_CHAIN, &f.chain, 4);
  auto st = nl.request(m, false, [](const struct nlmsghdr*) {},
                       fmt::format("deleting tc {} filter pref {} handle {:#x} on ifindex {}",
                                   to_string(dir), f.prio, f.handle, ifindex));
  if (!st && (st.error().err == ENOENT || st.error().err == ENODEV)) return {};
  return st;
}

Result<bool> clsact_present(Netlink& nl, int ifindex) {
  struct tcmsg t {};
  t.tcm_family = AF_UNSPEC;
  t.tcm_ifindex = ifindex;
  auto m = tc_msg(RTM_GETQDISC, 0, t);
  bool found = false;
  auto st = nl.request(
      m, true,
      [&](const struct nlmsghdr* h) {
        if (h->nlmsg_type != RTM_NEWQDISC) return;
        const auto* tm = static_cast<const struct tcmsg*>(NLMSG_DATA(h));
        if (tm->tcm_ifindex != ifindex || tm->tcm_parent != TC_H_CLSACT) return;
        for_each_attr(h, sizeof(*tm), [&](const rtattr* a) {
          if (a->rta_type == TCA_KIND && attr_string(a) == "clsact") found = true;
        });
      },
      fmt::format("dumping qdiscs of ifindex {}", ifindex));
  if (!st) return st.error();
  return found;
}

// Delete the clsact qdisc of `ifindex` if it has no filter (of any kind) left in either
// direction. Returns true when it was deleted.
Result<bool> delete_clsact_if_empty(Netlink& nl, int ifindex) {
  auto present = clsact_present(nl, ifindex);
  if (!present) return present.error();
  if (!*present) return false;
  for (TcDir d : {TcDir::Ingress, TcDir::Egress}) {
    struct tcmsg t {};
    t.tcm_family = AF_UNSPEC;
    t.tcm_ifindex = ifindex;
    t.tcm_parent = clsact_parent(d);
    auto m = tc_msg(RTM_GETTFILTER, 0, t);
    bool any = false;
    auto st = nl.request(
        m, true,
        [&](const struct nlmsghdr* h) {
          if (h->nlmsg_type == RTM_NEWTFILTER) any = true;
        },
        fmt::format("dumping tc {} filters of ifindex {}", to_string(d), ifindex));
    if (!st) return st.error();
    if (any) return false;
  }
  LIBBPF_OPTS(bpf_tc_hook, hook);
  hook.ifindex = ifindex;
  hook.attach_point = static_cast<enum bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
  int err = bpf_tc_hook_destroy(&hook);
  if (err != 0 && err != -ENOENT && err != -EINVAL && err != -ENODEV)
    return sys_error(err, fmt::format("deleting the clsact qdisc of ifindex {}", ifindex));
  spdlog::debug("deleted empty clsact qdisc of ifindex {}", ifindex);
  return true;
}

Status check_ifindex(Netlink& nl, int ifindex) {
  struct ifinfomsg ifi {};
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_index = ifindex;
  NlMsg m(RTM_GETLINK, 0, &ifi, sizeof(ifi));
  // Asked with NLM_F_ACK: the RTM_NEWLINK, then the ACK (or the error).
  return nl.request(m, false, [](const struct nlmsghdr*) {}, fmt::format("no network interface with ifindex {}", ifindex));
}

Result<std::vector<TcProgInfo>> list_impl(Netlink& nl, int ifindex, TcDir dir) {
  std::vector<TcProgInfo> out;
  auto tcx = tcx_query(ifindex, dir);
  if (!tcx) {
    if (tcx.error().err == ENODEV)
      return Error{ENODEV, fmt::format("no network interface with ifindex {}", ifindex)};
    return tcx.error();
  }
  if (!tcx->has_value()) WEIR_TRY(check_ifindex(nl, ifindex));  // no tcx: still report ENODEV
  if (tcx->has_value()) {
    uint32_t pos = 0;
    for (const auto& e : **tcx) {
      auto name = prog_name_by_id(e.prog_id);
      if (!name) return name.error();
      if (!name->has_value()) continue;  // program went away meanwhile
      TcProgInfo p;
      p.prog_id = e.prog_id;
      p.prog_name = **name;
      p.mode = TcMode::Tcx;
      p.link_id = e.link_id;
      p.priority = pos++;
      out.push_back(std::move(p));
    }
  }
  auto filters = dump_cls_bpf(nl, ifindex, dir);
  if (!filters) return filters.error();
  std::sort(filters->begin(), filters->end(), [](const ClsBpfFilter& a, const ClsBpfFilter& b) {
    return std::tie(a.chain, a.prio, a.handle) < std::tie(b.chain, b.prio, b.handle);
  });
  for (const auto& f : *filters) {
    auto name = prog_name_by_id(f.prog_id);
    if (!name) return name.error();
    TcProgInfo p;
    p.prog_id = f.prog_id;
    // The kernel name is authoritative; fall back to TCA_BPF_NAME ("name:[id]") when the
    // program cannot be opened.
    if (name->has_value()) {
      p.prog_name = **name;
    } else {
      p.prog_name = f.name.substr(0, f.name.find(':'));
    }
    p.mode = TcMode::Clsact;
    p.priority = f.prio;
    p.handle = f.handle;
    p.protocol = f.protocol;
    p.direct_action = f.direct_action;
    out.push_back(std::move(p));
  }
  return out;
}

bool is_weir_clsact_slot(const ClsBpfFilter& f) {
  return f.prio == kWeirTcPriority && f.handle == kWeirTcHandle && f.protocol == ETH_P_ALL &&
         f.chain == 0;
}

bool starts_with_weir(const std::string& name) { return name.rfind(kWeirProgPrefix, 0) == 0; }

// Remove every weir program on (ifindex, dir) except `keep_link_id` (tcx) or weir's own
// clsact slot when `keep_clsact_slot`. Returns what was removed.
// `stale`: the removed programs are leftovers (logged as warnings); else a requested cleanup.
Result<std::vector<TcProgInfo>> remove_other_weir(Netlink& nl, int ifindex, TcDir dir,
                                                  uint32_t keep_link_id, bool keep_clsact_slot,
                                                  bool stale = true) {
  const auto level = stale ? spdlog::level::warn : spdlog::level::debug;
  std::vector<TcProgInfo> removed;
  auto tcx = tcx_query(ifindex, dir);
  if (!tcx) return tcx.error();
  if (tcx->has_value()) {
    for (const auto& e : **tcx) {
      if (e.link_id != 0 && e.link_id == keep_link_id) continue;
      auto name = prog_name_by_id(e.prog_id);
      if (!name) return name.error();
      if (!name->has_value() || !starts_with_weir(**name)) continue;
      if (e.link_id != 0) {
        WEIR_TRY(link_detach_id(e.link_id));
      } else {
        WEIR_TRY(tcx_prog_detach(ifindex, dir, e.prog_id));
      }
      spdlog::log(level, "removed {}weir program {} (id {}, link {}) from tcx {} of ifindex {}", stale ? "stale " : "", **name,
                   e.prog_id, e.link_id, to_string(dir), ifindex);
      TcProgInfo p;
      p.prog_id = e.prog_id;
      p.prog_name = **name;
      p.mode = TcMode::Tcx;
      p.link_id = e.link_id;
      removed.push_back(std::move(p));
    }
  }
  auto filters = dump_cls_bpf(nl, ifindex, dir);
  if (!filters) return filters.error();
  for (const auto& f : *filters) {
    if (keep_clsact_slot && is_weir_clsact_slot(f)) continue;
    auto name = prog_name_by_id(f.prog_id);
    if (!name) return name.error();
    std::string n = name->has_value() ? **name : f.name.substr(0, f.name.find(':'));
    if (!starts_with_weir(n)) continue;
    WEIR_TRY(delete_cls_filter(nl, ifindex, dir, f));
    spdlog::log(level, "removed {}weir filter {} (id {}) pref {} handle {:#x} from tc {} of ifindex {}", stale ? "stale " : "", n,
                 f.prog_id, f.prio, f.handle, to_string(dir), ifindex);
    TcProgInfo p;
    p.prog_id = f.prog_id;
    p.prog_name = n;
    p.mode = TcMode::Clsact;
    p.priority = f.prio;
    p.handle = f.handle;
    p.protocol = f.protocol;
    p.direct_action = f.direct_action;
    removed.push_back(std::move(p));
  }
  return removed;
}

std::string parent_dir(const std::string& path) {
  auto s = path.find_last_of('/');
  if (s == std::string::npos || s == 0) return "/";
  return path.substr(0, s);
}

// The link pinned at `path` if it is a tcx link attached to (ifindex, dir) in this netns.
Result<std::optional<Fd>> open_our_tcx_link(const std::string& path, int ifindex, TcDir dir) {
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<Fd>{};
    return errno_error("opening pinned link " + path);
  }
  Fd link(fd);
  auto info = link_info(fd);
  if (!info) return info.error().wrap(path);
  if (info->type != kBpfLinkTypeTcx || info->tcx.ifindex != static_cast<__u32>(ifindex) ||
      info->tcx.attach_type != tcx_attach_type(dir))
    return std::optional<Fd>{};
  // The ifindex matches; make sure it is this namespace's hook that holds the link.
  auto q = tcx_query(ifindex, dir);
  if (!q) return q.error();
  if (!q->has_value()) return std::optional<Fd>{};
  for (const auto& e : **q)
    if (e.link_id == info->id) return std::optional<Fd>{std::move(link)};
  return std::optional<Fd>{};
}

Status attach_tcx(Netlink& nl, int ifindex, const std::string& ifname, TcDir dir, int prog_fd,
                  const std::string& pin) {
  if (pin.empty()) return make_error("tcx attach to {}: empty link pin path", ifname);
  uint32_t link_id = 0;
  auto existing = open_our_tcx_link(pin, ifindex, dir);
  if (!existing) return existing.error().wrap(fmt::format("attaching to {} {}", ifname, to_string(dir)));
  if (existing->has_value()) {
    int lfd = (*existing)->get();
    if (bpf_link_update(lfd, prog_fd, nullptr) != 0)
      return errno_error(fmt::format("replacing the program of tcx link {} ({} {})", pin, ifname, to_string(dir)));
    auto info = link_info(lfd);
    if (!info) return info.error();
    link_id = info->id;
    spdlog::debug("tcx {} {}: replaced program in link {} (id {})", ifname, to_string(dir), pin, link_id);
  } else {
    // A stale pin (link detached, interface gone or recreated) is ours to replace.
    if (::unlink(pin.c_str()) != 0 && errno != ENOENT) return errno_error("removing stale pin " + pin);
    WEIR_TRY(mkdirs(parent_dir(pin)));
    LinkCreateAttr a{};
    a.prog_fd = static_cast<__u32>(prog_fd);
    a.target_ifindex = static_cast<__u32>(ifindex);
    a.attach_type = tcx_attach_type(dir);
    long fd = sys_bpf(BPF_LINK_CREATE, &a, sizeof(a));
    if (fd < 0)
      return errno_error(fmt::format("creating tcx {} link on {} (ifindex {})", to_string(dir), ifname, ifindex));
    Fd link(static_cast<int>(fd));
    if (bpf_obj_pin(link.get(), pin.c_str()) != 0) {
      Error e = errno_error(fmt::format("pinning tcx link of {} {} at {}", ifname, to_string(dir), pin));
      (void)link_detach_fd(link.get(), "unpinned new link");
      return e;
    }
    auto info = link_info(link.get());
    if (!info) return info.error();
    link_id = info->id;
    spdlog::debug("tcx {} {}: created link {} (id {})", ifname, to_string(dir), pin, link_id);
  }
  auto removed = remove_other_weir(nl, ifindex, dir, link_id, false);
  if (!removed) return removed.error().wrap(fmt::format("removing stale weir programs from {} {}", ifname, to_string(dir)));
  bool had_clsact = std::any_of(removed->begin(), removed->end(),
                                [](const TcProgInfo& p) { return p.mode == TcMode::Clsact; });
  if (had_clsact) {
    auto d = delete_clsact_if_empty(nl, ifindex);
    if (!d) return d.error();
  }
  return {};
}

Status attach_clsact(Netlink& nl, int ifindex, const std::string& ifname, TcDir dir, int prog_fd) {
  LIBBPF_OPTS(bpf_tc_hook, hook);
  hook.ifindex = ifindex;
  hook.attach_point = tc_point(dir);
  // Check first: libbpf logs a kernel warning for every EEXIST.
  auto present = clsact_present(nl, ifindex);
  if (!present) return present.error();
  int err = 0;
  if (!*present) {
    err = bpf_tc_hook_create(&hook);
    if (err != 0 && err != -EEXIST)
      return sys_error(err, fmt::format("creating the clsact qdisc on {} (ifindex {})", ifname, ifindex));
  }
  LIBBPF_OPTS(bpf_tc_opts, opts);
  opts.prog_fd = prog_fd;
  opts.handle = kWeirTcHandle;
  opts.priority = kWeirTcPriority;
  opts.flags = BPF_TC_F_REPLACE;
  err = bpf_tc_attach(&hook, &opts);
  if (err != 0)
    return sys_error(err, fmt::format("attaching cls_bpf filter to {} {} (ifindex {})", ifname, to_string(dir), ifindex));
  spdlog::debug("clsact {} {}: filter pref {:#x} handle {:#x} -> prog id {}", ifname, to_string(dir),
                kWeirTcPriority, kWeirTcHandle, opts.prog_id);
  auto removed = remove_other_weir(nl, ifindex, dir, 0, true);
  if (!removed) return removed.error().wrap(fmt::format("removing stale weir programs from {} {}", ifname, to_string(dir)));
  return {};
}

}  // namespace

Result<TcMode> probe_tc_mode() {
  struct bpf_insn insns[] = {
      {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0},  // r0 = 0
      {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},                   // exit
  };
  int pfd = bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, "weir_probe", "GPL", insns, 2, nullptr);
  if (pfd < 0) return errno_error("loading a trivial SCHED_CLS program to probe tcx");
  Fd prog(pfd);
  LinkCreateAttr a{};
  a.prog_fd = static_cast<__u32>(pfd);
  a.target_ifindex = 0x7ffffff0;  // cannot exist: nothing is ever attached
  a.attach_type = kBpfTcxIngress;
  long r = sys_bpf(BPF_LINK_CREATE, &a, sizeof(a));
  if (r >= 0) {
    Fd link(static_cast<int>(r));  // impossible; detach whatever was created
    (void)link_detach_fd(link.get(), "probe link");
    return make_error("tcx probe: BPF_LINK_CREATE on ifindex 0x7ffffff0 unexpectedly succeeded");
  }
  int e = errno;
  if (e == ENODEV) {
    spdlog::debug("tc attach mode: tcx (the kernel supports BPF_TCX_INGRESS/EGRESS links)");
    return TcMode::Tcx;
  }
  if (e == EINVAL) {
    spdlog::debug("tc attach mode: clsact + cls_bpf direct-action (no tcx in this kernel)");
    return TcMode::Clsact;
  }
  return Error{e, "probing tcx support with BPF_LINK_CREATE"};
}

Status tc_attach(int ifindex, const std::string& ifname, TcDir dir, int prog_fd, TcMode mode,
                 const std::string& link_pin_path) {
  if (ifindex <= 0) return make_error("attaching to {}: invalid ifindex {}", ifname, ifindex);
  if (prog_fd < 0) return make_error("attaching to {}: invalid program fd", ifname);
  auto nl = Netlink::open();
  if (!nl) return nl.error();
  if (mode == TcMode::Tcx) return attach_tcx(*nl, ifindex, ifname, dir, prog_fd, link_pin_path);
  return attach_clsact(*nl, ifindex, ifname, dir, prog_fd);
}

Status tc_detach(int ifindex, TcDir dir, TcMode mode, const std::string& link_pin_path) {
  auto nl = Netlink::open();
  if (!nl) return nl.error();
  if (mode == TcMode::Tcx) {
    if (link_pin_path.empty()) return make_error("tcx detach from ifindex {}: empty link pin path", ifindex);
    int fd = bpf_obj_get(link_pin_path.c_str());
    if (fd < 0) {
      if (errno == ENOENT) return {};
      return errno_error("opening pinned link " + link_pin_path);
    }
    Fd link(fd);
    WEIR_TRY(link_detach_fd(link.get(), "tcx link " + link_pin_path));
    if (::unlink(link_pin_path.c_str()) != 0 && errno != ENOENT)
      return errno_error("unpinning " + link_pin_path);
    return {};
  }
  if (ifindex <= 0) return {};  // the interface is gone, and its filters with it
  auto present = clsact_present(*nl, ifindex);
  if (!present) return present.error();
  if (!*present) return {};  // no clsact qdisc, so no filter of ours
  LIBBPF_OPTS(bpf_tc_hook, hook);
  hook.ifindex = ifindex;
  hook.attach_point = tc_point(dir);
  LIBBPF_OPTS(bpf_tc_opts, opts);
  opts.handle = kWeirTcHandle;
  opts.priority = kWeirTcPriority;
  int err = bpf_tc_detach(&hook, &opts);
  if (err == -ENODEV) return {};  // interface gone: so is the filter
  // ENOENT: no such filter; EINVAL: no clsact qdisc at all.
  if (err != 0 && err != -ENOENT && err != -EINVAL)
    return sys_error(err, fmt::format("deleting weir's tc {} filter on ifindex {}", to_string(dir), ifindex));
  if (err == 0) {
    auto d = delete_clsact_if_empty(*nl, ifindex);
    if (!d) return d.error();
  }
  return {};
}

Result<std::vector<TcProgInfo>> tc_detach_all_weir(int ifindex, TcDir dir) {
  auto nl = Netlink::open();
  if (!nl) return nl.error();
  auto removed = remove_other_weir(*nl, ifindex, dir, 0, false, false);
  if (!removed) return removed.error();
  bool had_clsact = std::any_of(removed->begin(), removed->end(),
                                [](const TcProgInfo& p) { return p.mode == TcMode::Clsact; });
  if (had_clsact) {
    auto d = delete_clsact_if_empty(*nl, ifindex);
    if (!d) return d.error();
  }
  return removed;
}

Result<std::vector<TcProgInfo>> tc_list(int ifindex, TcDir dir) {
  if (ifindex <= 0) return Error{EINVAL, fmt::format("invalid ifindex {}", ifindex)};
  auto nl = Netlink::open();
  if (!nl) return nl.error();
  return list_impl(*nl, ifindex, dir);
}

Result<bool> has_clsact(int ifindex) {
  auto nl = Netlink::open();
  if (!nl) return nl.error();
  return clsact_present(*nl, ifindex);
}

Result<std::optional<TcxLinkInfo>> tcx_link_info(int link_fd) {
  auto info = link_info(link_fd);
  if (!info) return info.error();
  if (info->type != kBpfLinkTypeTcx) return std::optional<TcxLinkInfo>{};
  TcxLinkInfo t;
  t.link_id = info->id;
  t.prog_id = info->prog_id;
  t.ifindex = static_cast<int>(info->tcx.ifindex);
  t.dir = info->tcx.attach_type == kBpfTcxEgress ? TcDir::Egress : TcDir::Ingress;
  return std::optional<TcxLinkInfo>{t};
}

Status link_detach(int link_fd) { return link_detach_fd(link_fd, fmt::format("link fd {}", link_fd)); }

// ------------------------------------------------------------------ TcAttachment

TcAttachment::TcAttachment(TcAttachment&& o) noexcept
    : ifindex_(o.ifindex_), ifname_(std::move(o.ifname_)), dir_(o.dir_), mode_(o.mode_),
      link_pin_path_(std::move(o.link_pin_path_)), active_(std::exchange(o.active_, false)) {}

TcAttachment& TcAttachment::operator=(TcAttachment&& o) noexcept {
  if (this != &o) {
    if (active_) detach_or_warn();
    ifindex_ = o.ifindex_;
    ifname_ = std::move(o.ifname_);
    dir_ = o.dir_;
    mode_ = o.mode_;
    link_pin_path_ = std::move(o.link_pin_path_);
    active_ = std::exchange(o.active_, false);
  }
  return *this;
}

TcAttachment::~TcAttachment() {
  if (active_) detach_or_warn();
}

void TcAttachment::detach_or_warn() noexcept {
  // detach() and the log line build strings: only a failed allocation throws here, and a
  // destructor must not throw it on.
  try {
    auto st = detach();
    if (!st)
      spdlog::warn("detaching weir program from {} {}: {}", ifname_, to_string(dir_), st.error().str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "weir: detaching from ifindex %d: %s\n", ifindex_, e.what());
  }
}

Result<TcAttachment> TcAttachment::attach(int ifindex, const std::string& ifname, TcDir dir, int prog_fd,
                                          TcMode mode, const std::string& link_pin_path) {
  WEIR_TRY(tc_attach(ifindex, ifname, dir, prog_fd, mode, link_pin_path));
  TcAttachment a;
  a.ifindex_ = ifindex;
  a.ifname_ = ifname;
  a.dir_ = dir;
  a.mode_ = mode;
  a.link_pin_path_ = link_pin_path;
  a.active_ = true;
  return a;
}

Status TcAttachment::detach() {
  if (!active_) return {};
  active_ = false;
  return tc_detach(ifindex_, dir_, mode_, link_pin_path_);
}

void TcAttachment::release() { active_ = false; }

}  // namespace weir::bpf
