// weir_ct_scan_bench: the conntrack scanner (src/dataplane/ct_scanner.*) on a full table.
//
// Loads the agent's object (bpf/tc.bpf.c) with its maps pinned under a pin root on a bpffs
// of its own, mounted at /sys/fs/bpf in a private mount namespace: the pins disappear with the
// process, nothing outside is touched and no program is attached. It fills weir_ct1 (512Ki
// entries by default) with flows as a SYN flood leaves them (SYN-SENT, half of them NAT pairs
// to a VIP), then measures:
//   1. "live":    scanner periods over the full table when nothing has expired (the steady
//                 state of a flood: a SYN-SENT entry lives 20 s, a period is 10 s or less);
//   2. "expired": one period after every entry has expired (the whole table is deleted);
//   3. "count":   counting the entries as `weir bpf conntrack stats` does.
// For each: CPU time of the thread (user + system, getrusage), wall time, and the growth of
// the process's resident memory (VmHWM after the scan minus VmRSS before it, the peak reset
// through /proc/self/clear_refs). Also prints the kernel's memory of the conntrack map
// (fdinfo "memlock") per entry. Method and figures: bench/README.md.
//
//   weir_ct_scan_bench [--entries N] [--periods P] [--nat-percent X] [--cpu C]
#include <arpa/inet.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>

#include "bpf/bpffs.h"
#include "calc/conntrack.h"
#include "dataplane/ct_scanner.h"
#include "dataplane/programs.h"
#include "maps/pin_layout.h"
#include "maps/table.h"

namespace weir::bench {
namespace {

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "weir_ct_scan_bench: %s\n", what.c_str());
  std::exit(1);
}

struct Options {
  uint32_t entries = 512 * 1024;
  int periods = 5;
  int nat_percent = 50;  // of the flows (a NAT flow is two entries)
  int cpu = 0;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto next = [&]() -> long {
      if (i + 1 >= argc) die("missing value after " + a);
      return std::strtol(argv[++i], nullptr, 10);
    };
    if (a == "--entries") o.entries = static_cast<uint32_t>(next());
    else if (a == "--periods") o.periods = static_cast<int>(next());
    else if (a == "--nat-percent") o.nat_percent = static_cast<int>(next());
    else if (a == "--cpu") o.cpu = static_cast<int>(next());
    else
      die("unknown argument " + a +
          " (usage: weir_ct_scan_bench [--entries N] [--periods P] [--nat-percent X] [--cpu C])");
  }
  if (o.entries < 16 || o.periods < 1 || o.nat_percent < 0 || o.nat_percent > 100)
    die("--entries >= 16, --periods >= 1, --nat-percent 0..100");
  return o;
}

// A private mount namespace with a fresh bpffs at /sys/fs/bpf: pins vanish with the process.
void private_bpffs() {
  if (::unshare(CLONE_NEWNS) != 0) die(std::string("unshare(CLONE_NEWNS): ") + std::strerror(errno));
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    die(std::string("making / private: ") + std::strerror(errno));
  if (::mount("bpf", "/sys/fs/bpf", "bpf", 0, nullptr) != 0)
    die(std::string("mounting a private bpffs: ") + std::strerror(errno));
}

// "VmRSS" / "VmHWM" of this process in KiB.
long status_kib(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field, 0) == 0) return std::strtol(line.c_str() + std::strlen(field) + 1, nullptr, 10);
  return -1;
}

void reset_peak_rss() {
  std::ofstream("/proc/self/clear_refs") << "5";
}

// fdinfo "memlock:" of a map fd: the kernel's accounting of the map's memory.
long memlock_bytes(int fd) {
  std::ifstream in("/proc/self/fdinfo/" + std::to_string(fd));
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("memlock:", 0) == 0) return std::strtol(line.c_str() + 8, nullptr, 10);
  return -1;
}

double thread_cpu_ms() {
  rusage u{};
  getrusage(RUSAGE_THREAD, &u);
  auto ms = [](const timeval& t) { return t.tv_sec * 1e3 + t.tv_usec / 1e3; };
  return ms(u.ru_utime) + ms(u.ru_stime);
}

struct Cost {
  double cpu_ms = 0, wall_ms = 0;
  long rss_growth_kib = 0;
};

Cost measure(const std::function<void()>& f) {
  reset_peak_rss();
  long rss0 = status_kib("VmRSS:");
  double cpu0 = thread_cpu_ms();
  auto t0 = std::chrono::steady_clock::now();
  f();
  Cost c;
  c.wall_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  c.cpu_ms = thread_cpu_ms() - cpu0;
  c.rss_growth_kib = status_kib("VmHWM:") - rss0;
  return c;
}

constexpr uint64_t kSec = 1000000000ull;

// Fills the table as a SYN flood from 10.65.x.y leaves it: SYN-SENT flows, nat_percent of them
// to VIP 10.96.0.10:80 (NAT_FWD + NAT_REV to backend 10.65.0.3:8080), the others to 10.65.0.4:80.
// Every entry was last seen at `last_seen`. Returns the number of entries written.
uint32_t fill(maps::ConntrackMap& ct, uint32_t entries, int nat_percent, uint64_t last_seen) {
  using model::Ipv4;
  const Ipv4 vip = *Ipv4::parse("10.96.0.10"), backend = *Ipv4::parse("10.65.0.3"),
             server = *Ipv4::parse("10.65.0.4");
  uint32_t written = 0;
  for (uint32_t flow = 0; written + 2 <= entries; flow++) {
    Ipv4 client{0x0a410000u + 0x100u + flow / 60000};  // 10.65.1.0 + ...
    uint16_t cport = static_cast<uint16_t>(1024 + flow % 60000);
    bool nat = static_cast<int>(flow % 100) < nat_percent;
    weir_ct_val v{};
    v.created_ns = v.last_seen_ns = last_seen;
    bool first = false;
    if (!nat) {
      auto k = calc::ct_make_key(client, cport, server, 80, IPPROTO_TCP, &first);
      v.type = WEIR_CT_NORMAL;
      v.flags = first ? WEIR_CT_F_A_IS_CLIENT : 0;
      (first ? v.a : v.b).flags = WEIR_CT_LEG_SYN | WEIR_CT_LEG_APPROVED | WEIR_CT_LEG_WORKLOAD;
      if (!ct.update(k, v).ok()) die("filling the conntrack map");
      written++;
      continue;
    }
    auto fk = calc::ct_make_key(client, cport, vip, 80, IPPROTO_TCP, &first);
    v.type = WEIR_CT_NAT_FWD;
    v.flags = first ? WEIR_CT_F_A_IS_CLIENT : 0;
    v.nat_addr = backend.network_order();
    v.nat_port = htons(8080);
    (first ? v.a : v.b).flags = WEIR_CT_LEG_SYN | WEIR_CT_LEG_APPROVED | WEIR_CT_LEG_WORKLOAD;
    if (!ct.update(fk, v).ok()) die("filling the conntrack map");
    weir_ct_val r{};
    r.created_ns = r.last_seen_ns = last_seen;
    auto rk = calc::ct_make_key(client, cport, backend, 8080, IPPROTO_TCP, &first);
    r.type = WEIR_CT_NAT_REV;
    r.flags = first ? WEIR_CT_F_A_IS_CLIENT : 0;
    r.nat_addr = vip.network_order();
    r.nat_port = htons(80);
    (first ? r.a : r.b).flags = WEIR_CT_LEG_SYN | WEIR_CT_LEG_APPROVED | WEIR_CT_LEG_WORKLOAD;
    if (!ct.update(rk, r).ok()) die("filling the conntrack map");
    written += 2;
  }
  return written;
}

void print_cost(const char* what, const Cost& c, const std::string& extra) {
  std::printf("%-8s cpu %8.1f ms  wall %8.1f ms  rss +%7.1f MiB  %s\n", what, c.cpu_ms, c.wall_ms,
              c.rss_growth_kib / 1024.0, extra.c_str());
}

int run(const Options& o) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(o.cpu, &set);
  (void)sched_setaffinity(0, sizeof(set), &set);
  private_bpffs();
  maps::PinLayout layout{"/sys/fs/bpf/weir-ctbench"};
  if (auto s = bpf::mkdirs(layout.maps_dir()); !s) die(s.error().str());
  model::MapSizes sizes;
  sizes.conntrack = o.entries;
  auto progs = dataplane::TcPrograms::load(layout, sizes);
  if (!progs) die(progs.error().str());
  maps::ConntrackMap& ct = progs->maps().ct;
  std::printf("conntrack map %s: max_entries %u, kernel memory (fdinfo memlock) %.1f MiB = %.0f B/entry\n",
              ct.name().c_str(), ct.info().max_entries, memlock_bytes(ct.fd().fd()) / 1048576.0,
              double(memlock_bytes(ct.fd().fd())) / ct.info().max_entries);

  const model::ConntrackTimeouts timeouts;  // SYN-SENT: 20 s
  const uint64_t now = dataplane::monotonic_ns() + 3600 * kSec;
  uint32_t n = fill(ct, o.entries, o.nat_percent, now - 5 * kSec);
  std::printf("filled %u entries (%d%% of the flows NAT pairs), baseline RSS %.1f MiB\n", n,
              o.nat_percent, status_kib("VmRSS:") / 1024.0);

  maps::KernelTables tables(progs->maps());
  dataplane::ConntrackScanner scanner(tables.core());
  double cpu_sum = 0;
  for (int p = 0; p < o.periods; p++) {
    dataplane::ConntrackScanner::Stats st;
    Cost c = measure([&] {
      auto r = scanner.scan(timeouts, nullptr, now);
      if (!r) die(r.error().str());
      st = *r;
    });
    cpu_sum += c.cpu_ms;
    print_cost("live", c, fmt::format("scanned {} expired {}", st.scanned, st.expired));
  }
  std::printf("live     mean cpu per period %.1f ms\n", cpu_sum / o.periods);

  Cost cc = measure([&] {
    auto c = ct.count();
    if (!c) die(c.error().str());
    n = static_cast<uint32_t>(*c);
  });
  print_cost("count", cc, fmt::format("{} entries", n));

  dataplane::ConntrackScanner::Stats st;
  Cost c = measure([&] {
    auto r = scanner.scan(timeouts, nullptr, now + 60 * kSec);
    if (!r) die(r.error().str());
    st = *r;
  });
  print_cost("expired", c, fmt::format("scanned {} expired {}", st.scanned, st.expired));
  auto left = ct.count();
  std::printf("left after the expiry period: %zu entries\n", left ? *left : size_t(0));
  return 0;
}

}  // namespace
}  // namespace weir::bench

int main(int argc, char** argv) {
  if (::geteuid() != 0) weir::bench::die("needs root (BPF maps, a private mount namespace)");
  return weir::bench::run(weir::bench::parse(argc, argv));
}
