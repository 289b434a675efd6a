// Definitions of tc_harness.h.

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

#include <sys/mount.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdlib>

#include "tc_harness.h"
#include "weir/maps.h"
#include "weir/policy.h"

namespace weir::test {

namespace {
// The private bpffs of this process (enter_private_netns); empty before.
std::string& bpffs_dir() {
  static std::string dir;  // NOLINT: set once, before any test
  return dir;
}

void remove_bpffs_dir() {
  if (bpffs_dir().empty()) return;
  ::umount2(bpffs_dir().c_str(), MNT_DETACH);
  ::rmdir(bpffs_dir().c_str());
}
}  // namespace

Status enter_private_netns() {
  if (geteuid() != 0) return Error{EPERM, "BPF tests need root (CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_BPF)"};
  const std::string dir = "/tmp/weir-tcobj-" + std::to_string(getpid());
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return errno_error("mkdir " + dir);
  if (unshare(CLONE_NEWNET | CLONE_NEWNS) != 0)
    return errno_error("unshare(CLONE_NEWNET|CLONE_NEWNS) for a private test network and mount namespace");
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) != 0) return errno_error("making / a recursive slave");
  if (::mount("bpf", dir.c_str(), "bpf", 0, "mode=0700") != 0) return errno_error("mounting a private bpffs on " + dir);
  bpffs_dir() = dir;
  std::atexit(remove_bpffs_dir);
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
model::MapSizes to_model(const MapSizes& s) {
  model::MapSizes m;
  m.nat_frontend = s.nat_fe.value_or(m.nat_frontend);
  m.nat_backend = s.nat_be.value_or(m.nat_backend);
  m.conntrack = s.ct.value_or(m.conntrack);
  m.routes = s.routes.value_or(m.routes);
  m.ifstate = s.ifstate.value_or(m.ifstate);
  m.counters = s.counters.value_or(m.counters);
  return m;
}
}  // namespace

Result<std::unique_ptr<TcObject>> TcObject::load(const MapSizes& sizes, dataplane::TcPrograms::Variant variant) {
  if (bpffs_dir().empty()) return Error{ENOENT, "no private bpffs: enter_private_netns() first"};
  static std::atomic<int> loads{0};  // a fresh pin root per load: nothing of an earlier one is reused
  maps::PinLayout layout{bpffs_dir() + "/obj" + std::to_string(loads++)};
  auto progs = dataplane::TcPrograms::load(layout, to_model(sizes), variant);
  if (!progs) {
    return progs.error().wrap(fmt::format("loading weir_tc ({}) with dataplane::TcPrograms::load",
                                          dataplane::to_string(variant)));
  }
  return std::unique_ptr<TcObject>(new TcObject(std::move(layout), std::move(*progs)));
}

Result<TcObject*> TcObject::shared(const MapSizes& sizes, dataplane::TcPrograms::Variant variant) {
  // One per size set and variant, for the life of the process (test fixtures only).
  struct Loaded {
    MapSizes sizes;
    dataplane::TcPrograms::Variant variant;
    std::unique_ptr<TcObject> obj;
  };
  static std::vector<Loaded> objects;  // NOLINT
  for (auto& o : objects) {
    if (o.sizes == sizes && o.variant == variant) {
      WEIR_TRY(o.obj->reset());
      return o.obj.get();
    }
  }
  auto obj = load(sizes, variant);
  if (!obj.ok()) return obj.error();
  objects.push_back(Loaded{sizes, variant, std::move(*obj)});
  return objects.back().obj.get();
}

namespace {
// Zeroes every element of an array or per-CPU array map.
Status zero_array(const bpf::MapFd& m) {
  size_t size = m.info().value_size;
  if (bpf::is_percpu_map_type(m.info().type)) {
    auto ncpu = bpf::num_possible_cpus();
    if (!ncpu) return ncpu.error();
    size = (size + 7) / 8 * 8 * static_cast<size_t>(*ncpu);
  }
  const std::vector<uint8_t> zero(size, 0);
  for (uint32_t i = 0; i < m.info().max_entries; i++) WEIR_TRY(bpf::detail::raw_update(m, &i, zero.data(), BPF_ANY));
  return {};
}

// Deletes every key of a hash-like map (hash, LRU, LPM trie, per-CPU hash, program array).
Status delete_all(const bpf::MapFd& m) {
  auto keys = bpf::detail::raw_keys(m);
  if (!keys) return keys.error();
  for (const std::string& k : *keys) {
    auto r = bpf::detail::raw_delete(m, k.data());
    if (!r) return r.error();
  }
  return {};
}
}  // namespace

Status TcObject::reset() {
  for (const maps::MapSpec& spec : maps::kMapSpecs) {
    // A ring buffer has no entries to delete: whoever reads it drains it (the flow event tests).
    if (spec.type == BPF_MAP_TYPE_RINGBUF) continue;
    auto m = bpf::MapFd::dup_of(progs_.map_fds()[spec.id]);
    if (!m) return m.error().wrap("resetting " + std::string(spec.name));
    const bool array = spec.type == BPF_MAP_TYPE_ARRAY || spec.type == BPF_MAP_TYPE_PERCPU_ARRAY;
    WEIR_TRY(array ? zero_array(*m) : delete_all(*m));
  }
  return progs_.install_continuations();
}

int TcObject::prog_fd(Prog p) const {
  switch (p) {
    case Prog::FromWl: return progs_.from_wl_fd();
    case Prog::ToWl: return progs_.to_wl_fd();
    case Prog::FromWlPol: return progs_.from_wl_pol_fd();
    case Prog::ToWlPol: return progs_.to_wl_pol_fd();
    case Prog::VxlanEncap: return progs_.vxlan_encap_fd();
    case Prog::FromUl: return progs_.from_ul_fd();
  }
  return -1;
}

int TcObject::map_fd(const std::string& name) const {
  for (const maps::MapSpec& m : maps::kMapSpecs)
    if (m.name == name) return progs_.map_fds()[m.id];
  return -1;
}

maps::MapFds TcObject::map_fds() const { return progs_.map_fds(); }

polprog::PolicyMapFds TcObject::policy_map_fds() const { return progs_.policy_map_fds(); }

uint32_t TcObject::map_max_entries(const std::string& name) const {
  auto m = bpf::MapFd::dup_of(map_fd(name));
  return m ? m->info().max_entries : 0;
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
    if (bpf_map_delete_elem(fd, &k) != 0 && errno != ENOENT) return errno_error(std::string("deleting from ") + WEIR_MAP_CT);
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
    if (bpf_map_delete_elem(fd, &key) != 0 && errno != ENOENT) return errno_error(std::string("deleting from ") + WEIR_MAP_COUNTERS);
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
