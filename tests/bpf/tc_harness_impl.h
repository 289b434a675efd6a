// Definitions of tc_harness.h. Include from exactly ONE translation unit per binary (see there).
#pragma once

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <net/if.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "tc.skel.h"
#include "tc_harness.h"
#include "weir/maps.h"
#include "weir/policy.h"

namespace weir::test {

Status enter_private_netns() {
  if (geteuid() != 0) return Error{EPERM, "BPF tests need root (CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_BPF)"};
  if (unshare(CLONE_NEWNET) != 0) return errno_error("unshare(CLONE_NEWNET) for a private test network namespace");
  return {};
}

Result<std::pair<uint32_t, uint32_t>> add_veth(const std::string& name, const std::string& peer) {
  std::unique_ptr<nl_sock, void (*)(nl_sock*)> sk(nl_socket_alloc(), nl_socket_free);
  if (!sk) return Error{ENOMEM, "nl_socket_alloc"};
  int rc = nl_connect(sk.get(), NETLINK_ROUTE);
  if (rc < 0) return make_error("netlink connect: {}", nl_geterror(rc));
  rc = rtnl_link_veth_add(sk.get(), name.c_str(), peer.c_str(), getpid());
  if (rc < 0) return make_error("creating veth pair {}/{}: {}", name, peer, nl_geterror(rc));
  uint32_t a = if_nametoindex(name.c_str());
  uint32_t b = if_nametoindex(peer.c_str());
  if (a == 0 || b == 0) return errno_error("if_nametoindex(" + name + "/" + peer + ")");
  return std::make_pair(a, b);
}

namespace {
struct SizeOverride {
  const char* map;
  const std::optional<uint32_t>& size;
};
}  // namespace

Result<std::unique_ptr<TcObject>> TcObject::load(const MapSizes& sizes) {
  errno = 0;
  weir_tc* skel = weir_tc__open();
  if (skel == nullptr) return errno_error("opening the weir_tc BPF object");
  std::unique_ptr<TcObject> obj(new TcObject(skel));
  const SizeOverride overrides[] = {
      {WEIR_MAP_NAT_FE, sizes.nat_fe}, {WEIR_MAP_NAT_BE, sizes.nat_be},   {WEIR_MAP_CT, sizes.ct},
      {WEIR_MAP_ROUTES, sizes.routes}, {WEIR_MAP_IFSTATE, sizes.ifstate}, {WEIR_MAP_COUNTERS, sizes.counters},
  };
  for (const auto& o : overrides) {
    if (!o.size) continue;
    bpf_map* m = bpf_object__find_map_by_name(skel->obj, o.map);
    if (m == nullptr) return make_error("weir_tc object has no map {}", o.map);
    int rc = bpf_map__set_max_entries(m, *o.size);
    if (rc != 0) return sys_error(rc, fmt::format("setting max_entries of {} to {}", o.map, *o.size));
  }
  int rc = weir_tc__load(skel);
  if (rc != 0)
    return sys_error(rc, "loading weir_tc (weir_from_wl, weir_to_wl, weir_from_wl_pol, weir_to_wl_pol) "
                         "through the verifier");
  const std::pair<uint32_t, Prog> conts[] = {{WEIR_JUMP_FROM_WL_POLICY_DONE, Prog::FromWlPol},
                                             {WEIR_JUMP_TO_WL_POLICY_DONE, Prog::ToWlPol}};
  for (const auto& [slot, prog] : conts) {
    int fd = obj->prog_fd(prog);
    if (bpf_map_update_elem(bpf_map__fd(skel->maps.weir_jump1), &slot, &fd, BPF_ANY) != 0)
      return errno_error(fmt::format("writing the policy continuation into jump slot {}", slot));
  }
  return obj;
}

TcObject::~TcObject() { weir_tc__destroy(skel_); }

int TcObject::prog_fd(Prog p) const {
  switch (p) {
    case Prog::FromWl: return bpf_program__fd(skel_->progs.weir_from_wl);
    case Prog::ToWl: return bpf_program__fd(skel_->progs.weir_to_wl);
    case Prog::FromWlPol: return bpf_program__fd(skel_->progs.weir_from_wl_pol);
    case Prog::ToWlPol: return bpf_program__fd(skel_->progs.weir_to_wl_pol);
  }
  return -1;
}

int TcObject::map_fd(const std::string& name) const {
  bpf_map* m = bpf_object__find_map_by_name(skel_->obj, name.c_str());
  return m == nullptr ? -1 : bpf_map__fd(m);
}

uint32_t TcObject::map_max_entries(const std::string& name) const {
  bpf_map* m = bpf_object__find_map_by_name(skel_->obj, name.c_str());
  return m == nullptr ? 0 : bpf_map__max_entries(m);
}

Result<uint32_t> TcObject::prog_insns(Prog p) const {
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  int rc = bpf_obj_get_info_by_fd(prog_fd(p), &info, &len);
  if (rc != 0) return sys_error(rc, "bpf_obj_get_info_by_fd");
  return info.xlated_prog_len / 8;
}

Result<TestRun> TcObject::run(Prog p, uint32_t ifindex, const std::vector<uint8_t>& pkt, int repeat,
                              uint32_t mark) const {
  TestRun r;
  r.out.resize(pkt.size() + 512);
  __sk_buff ctx{}, ctx_out{};
  ctx.ifindex = ifindex;
  ctx.mark = mark;
  bpf_test_run_opts opts{};
  opts.sz = sizeof(opts);
  opts.data_in = pkt.data();
  opts.data_size_in = uint32_t(pkt.size());
  opts.data_out = r.out.data();
  opts.data_size_out = uint32_t(r.out.size());
  opts.ctx_in = &ctx;
  opts.ctx_size_in = sizeof(ctx);
  opts.ctx_out = &ctx_out;
  opts.ctx_size_out = sizeof(ctx_out);
  opts.repeat = repeat;
  int rc = bpf_prog_test_run_opts(prog_fd(p), &opts);
  if (rc != 0) return sys_error(rc == -1 ? errno : rc, fmt::format("BPF_PROG_TEST_RUN (ifindex {}, {} bytes)", ifindex, pkt.size()));
  r.retval = int(opts.retval);
  r.out.resize(opts.data_size_out);
  r.duration_ns = opts.duration;
  r.mark = ctx_out.mark;
  return r;
}

namespace {
Status update(int fd, const void* k, const void* v, const char* what) {
  if (bpf_map_update_elem(fd, k, v, BPF_ANY) != 0) return errno_error(std::string("updating ") + what);
  return {};
}
}  // namespace

Status TcObject::put_frontend(uint32_t vip, uint16_t port_host, uint8_t proto, const weir_nat_fe_val& v) {
  weir_nat_fe_key k{};
  k.addr = vip;
  k.port = htons(port_host);
  k.proto = proto;
  return update(map_fd(WEIR_MAP_NAT_FE), &k, &v, WEIR_MAP_NAT_FE);
}

Status TcObject::put_backend(uint32_t svc_id, uint32_t ordinal, uint32_t addr, uint16_t port_host) {
  weir_nat_be_key k{svc_id, ordinal};
  weir_nat_be_val v{};
  v.addr = addr;
  v.port = htons(port_host);
  return update(map_fd(WEIR_MAP_NAT_BE), &k, &v, WEIR_MAP_NAT_BE);
}

Status TcObject::put_route(uint32_t addr, uint32_t prefixlen, const weir_route_val& v) {
  weir_route_key k{prefixlen, addr};
  return update(map_fd(WEIR_MAP_ROUTES), &k, &v, WEIR_MAP_ROUTES);
}

Status TcObject::put_ifstate(uint32_t ifindex, const weir_ifstate_val& v) {
  return update(map_fd(WEIR_MAP_IFSTATE), &ifindex, &v, WEIR_MAP_IFSTATE);
}

std::optional<weir_ct_val> TcObject::ct_get(const weir_ct_key& k) const {
  weir_ct_val v{};
  if (bpf_map_lookup_elem(map_fd(WEIR_MAP_CT), &k, &v) != 0) return std::nullopt;
  return v;
}

Status TcObject::ct_put(const weir_ct_key& k, const weir_ct_val& v) { return update(map_fd(WEIR_MAP_CT), &k, &v, WEIR_MAP_CT); }

std::vector<std::pair<weir_ct_key, weir_ct_val>> TcObject::ct_all() const {
  std::vector<std::pair<weir_ct_key, weir_ct_val>> all;
  int fd = map_fd(WEIR_MAP_CT);
  weir_ct_key k{}, next{};
  const void* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    weir_ct_val v{};
    if (bpf_map_lookup_elem(fd, &next, &v) == 0) all.emplace_back(next, v);
    k = next;
    prev = &k;
  }
  return all;
}

Status TcObject::ct_clear() {
  int fd = map_fd(WEIR_MAP_CT);
  for (const auto& [k, v] : ct_all()) {
    if (bpf_map_delete_elem(fd, &k) != 0 && errno != ENOENT) return errno_error("deleting from " WEIR_MAP_CT);
  }
  return {};
}

weir_counters_val TcObject::counters(uint32_t ifindex, uint32_t hook) const {
  weir_counters_val sum{};
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return sum;
  std::vector<weir_counters_val> per_cpu(static_cast<size_t>(ncpu));
  weir_counters_key k{ifindex, hook};
  if (bpf_map_lookup_elem(map_fd(WEIR_MAP_COUNTERS), &k, per_cpu.data()) != 0) return sum;
  for (const auto& c : per_cpu)
    for (int i = 0; i < WEIR_CNT__MAX; i++) sum.c[i] += c.c[i];
  return sum;
}

std::vector<weir_counters_key> TcObject::counter_keys() const {
  int fd = map_fd(WEIR_MAP_COUNTERS);
  weir_counters_key k{}, next{};
  std::vector<weir_counters_key> keys;
  const void* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    keys.push_back(next);
    k = next;
    prev = &k;
  }
  return keys;
}

Status TcObject::counters_clear() {
  int fd = map_fd(WEIR_MAP_COUNTERS);
  for (const auto& key : counter_keys()) {
    if (bpf_map_delete_elem(fd, &key) != 0 && errno != ENOENT) return errno_error("deleting from " WEIR_MAP_COUNTERS);
  }
  return {};
}

std::pair<weir_ct_key, bool> ct_key(uint32_t saddr, uint16_t sport, uint32_t daddr, uint16_t dport, uint8_t proto) {
  weir_ct_key k{};
  uint16_t sp = htons(sport), dp = htons(dport);
  bool src_is_a = saddr < daddr || (saddr == daddr && sp <= dp);
  k.addr_a = src_is_a ? saddr : daddr;
  k.port_a = src_is_a ? sp : dp;
  k.addr_b = src_is_a ? daddr : saddr;
  k.port_b = src_is_a ? dp : sp;
  k.proto = proto;
  return {k, src_is_a};
}

}  // namespace weir::test
