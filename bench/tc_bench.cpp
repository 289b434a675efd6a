// weir_bench: BPF_PROG_TEST_RUN cost per packet of the TC datapath (bpf/tc.bpf.c) against the
// floor of an empty TC program, measured the same way. Runs in its own network namespace (like
// weir_bpf_tests): BPF_PROG_TEST_RUN needs an existing ifindex, and nothing outside the
// namespace is touched. Method and figures: bench/README.md.
//
//   weir_bench [--repeat N] [--runs M] [--cpu C]
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <sched.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include <poll.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "agent/flow_recorder.h"
#include "bench_options.h"
#include "dataplane/flow_events.h"
#include "dataplane/log_filters.h"
#include "weir/log.h"
#include "../tests/bpf/packet.h"
#include "../tests/bpf/tc_harness.h"

namespace weir::bench {
namespace {

using test::Bytes;
using test::Mac;
using test::PacketSpec;
using test::Prog;
using test::TcObject;
using test::ip4;

const Mac kClientMac{0x02, 0, 0, 0, 0, 0x10}, kClientHostMac{0xee, 0xee, 0, 0, 0, 0x10};
const Mac kBeMac{0x02, 0, 0, 0, 1, 0x11}, kBeHostMac{0xee, 0xee, 0, 0, 1, 0x11};
const uint32_t kClientIp = ip4("10.65.0.10"), kBeIp = ip4("10.65.1.11"), kVip = ip4("10.96.0.10");
constexpr uint16_t kVipPort = 80, kBePort = 8080;

[[noreturn]] void die(const std::string& what) { weir::bench::die("weir_bench", what); }

PacketSpec tcp(const Mac& src_mac, const Mac& dst_mac, uint32_t saddr, uint16_t sport, uint32_t daddr, uint16_t dport,
               uint8_t flags) {
  PacketSpec s;
  s.eth.src = src_mac;
  s.eth.dst = dst_mac;
  s.ip.saddr = saddr;
  s.ip.daddr = daddr;
  s.ip.df = true;
  test::TcpSpec t;
  t.sport = sport;
  t.dport = dport;
  t.flags = flags;
  t.seq = 1;
  s.l4 = t;
  s.payload = Bytes(64, 'b');
  return s;
}

// Raw test run on any program fd; returns the kernel-reported ns per repetition.
uint32_t test_run(int fd, uint32_t ifindex, const Bytes& pkt, int repeat, int expect_retval) {
  std::vector<uint8_t> out(pkt.size() + 256);
  __sk_buff ctx{};
  ctx.ifindex = ifindex;
  bpf_test_run_opts o{};
  o.sz = sizeof(o);
  o.data_in = pkt.data();
  o.data_size_in = uint32_t(pkt.size());
  o.data_out = out.data();
  o.data_size_out = uint32_t(out.size());
  o.ctx_in = &ctx;
  o.ctx_size_in = sizeof(ctx);
  o.repeat = repeat;
  if (bpf_prog_test_run_opts(fd, &o) != 0) die(std::string("BPF_PROG_TEST_RUN: ") + std::strerror(errno));
  if (expect_retval >= 0 && int(o.retval) != expect_retval)
    die("unexpected verdict " + std::to_string(o.retval) + " (want " + std::to_string(expect_retval) + ")");
  return o.duration;
}

double median(std::vector<uint32_t> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : (v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2.0);
}
double mean(const std::vector<uint32_t>& v) {
  double s = 0;
  for (auto x : v) s += x;
  return v.empty() ? 0 : s / double(v.size());
}

// `runs` repeat=1 runs, packet i from make(i): median and mean of the kernel durations.
struct Single {
  double median_ns, mean_ns;
};
Single single_runs(int fd, uint32_t ifindex, int runs, const std::function<Bytes(int)>& make, int expect) {
  std::vector<uint32_t> d;
  d.reserve(size_t(runs));
  for (int i = 0; i < runs; i++) d.push_back(test_run(fd, ifindex, make(i), 1, expect));
  return {median(d), mean(d)};
}

// Median over a few rounds of a repeat-mode measurement (each round is one syscall).
double repeated(int fd, uint32_t ifindex, const Bytes& pkt, int repeat, int expect) {
  std::vector<uint32_t> rounds;
  for (int r = 0; r < 5; r++) rounds.push_back(test_run(fd, ifindex, pkt, repeat, expect));
  return median(rounds);
}

// ifstate and routes of the two pods, the clients' /16 and the service, as the agent writes them.
void program(TcObject& tc, uint32_t cif, uint32_t bif) {
  for (auto [ifindex, mac, ip, wl_mac] : {std::tuple{cif, kClientHostMac, kClientIp, kClientMac},
                                          std::tuple{bif, kBeHostMac, kBeIp, kBeMac}}) {
    weir_ifstate_val ifs{};
    ifs.flags = WEIR_IF_F_WORKLOAD | WEIR_IF_F_READY;
    ifs.ingress_slot = WEIR_NO_POLICY_SLOT;  // no policy (slot 0 is the continuation)
    ifs.egress_slot = WEIR_NO_POLICY_SLOT;
    std::copy(mac.begin(), mac.end(), ifs.host_mac);
    weir_route_val rt{};
    rt.flags = WEIR_RT_F_LOCAL_WORKLOAD;
    rt.ifindex = ifindex;
    std::copy(wl_mac.begin(), wl_mac.end(), rt.mac);
    if (!tc.put_ifstate(ifindex, ifs).ok() || !tc.put_route(ip, 32, rt).ok()) die("programming ifstate/routes");
  }
  // The new-flow case sends from many client addresses (10.70.0.0/16), all the client pod's.
  weir_route_val many{};
  many.flags = WEIR_RT_F_LOCAL_WORKLOAD;
  many.ifindex = cif;
  if (!tc.put_route(ip4("10.70.0.0"), 16, many).ok()) die("programming the clients' route");
  weir_nat_fe_val fe{};
  fe.svc_id = 1;
  fe.count = 1;
  if (!tc.put_backend(1, 0, kBeIp, kBePort).ok() || !tc.put_frontend(kVip, kVipPort, 6, fe).ok()) die("programming NAT");
}

// A flow from client port `sport` to `daddr`:`dport` (the backend, or the VIP: DNAT), set up by
// real packets through both programs (SYN, the backend's to_wl approval, SYN-ACK, ACK) so that
// its next packets take the established fast path. Returns its ACK. The no-NAT flow's can be
// repeated on the same skb (its only rewrite, the Ethernet header, is the same every time); the
// NAT flow's is rewritten by DNAT, so only repeat=1 runs measure it.
Bytes establish(TcObject& tc, uint32_t cif, uint32_t bif, uint16_t sport, uint32_t daddr = kBeIp,
                uint16_t dport = kBePort) {
  const int from = tc.prog_fd(Prog::FromWl), to = tc.prog_fd(Prog::ToWl);
  test_run(from, cif, test::build(tcp(kClientMac, kClientHostMac, kClientIp, sport, daddr, dport, test::kTcpSyn)), 1,
           TC_ACT_REDIRECT);
  test_run(to, bif, test::build(tcp(kBeHostMac, kBeMac, kClientIp, sport, kBeIp, kBePort, test::kTcpSyn)), 1, TC_ACT_OK);
  test_run(from, bif, test::build(tcp(kBeMac, kBeHostMac, kBeIp, kBePort, kClientIp, sport, test::kTcpSyn | test::kTcpAck)),
           1, TC_ACT_REDIRECT);
  Bytes ack = test::build(tcp(kClientMac, kClientHostMac, kClientIp, sport, daddr, dport, test::kTcpAck));
  test_run(from, cif, ack, 1, TC_ACT_REDIRECT);
  return ack;
}

// The cost of the debug log and of profiling (issue 11 §8): the established no-NAT packet
// through each build, loaded side by side (each with maps of its own), measured in interleaved
// rounds so that the machine's drift hits them all alike. The log variant is measured with its
// log Off (no weir_logif1 entry) and with a pcap filter that does not match the packet (every
// packet takes the filter's round trip: two tail calls and the main program's start twice).
void compare_builds(const Options& opt, int floor_fd, uint32_t cif, uint32_t bif) {
  using Variant = dataplane::TcPrograms::Variant;
  struct Build {
    std::string label;
    Variant variant;
    const char* filter = nullptr;  // bpfLogFilters' "all", nullptr for none
    std::unique_ptr<TcObject> obj;
    std::unique_ptr<dataplane::LogFilters> log;
    Bytes pkt;
    std::vector<uint32_t> rounds;
  };
  std::vector<Build> builds(4);
  builds[0].label = "production build (bpfLogLevel Off, bpfProfiling Disabled)";
  builds[0].variant = Variant::Production;
  builds[1].label = "log variant, no weir_logif1 entry (nothing logged)";
  builds[1].variant = Variant::Log;
  builds[2].label = "log variant, Debug, pcap filter \"udp port 9\" (filtered out)";
  builds[2].variant = Variant::Log;
  builds[2].filter = "udp port 9";
  builds[3].label = "profiling build (bpfProfiling Enabled)";
  builds[3].variant = Variant::Profile;
  uint16_t sport = 32000;
  for (Build& b : builds) {
    auto o = TcObject::load(test::MapSizes::defaults(), b.variant);
    if (!o.ok()) die(o.error().str());
    b.obj = std::move(*o);
    program(*b.obj, cif, bif);
    b.pkt = establish(*b.obj, cif, bif, sport++);
    if (b.filter != nullptr) {
      b.log = std::make_unique<dataplane::LogFilters>(b.obj->programs(), [](const std::string&) { return 0u; });
      if (auto st = b.log->apply({WEIR_LOG_DEBUG, {{"all", b.filter}}}); !st) die(st.error().str());
    }
    test_run(b.obj->prog_fd(Prog::FromWl), cif, b.pkt, opt.repeat / 10 + 1, TC_ACT_REDIRECT);  // warm-up
  }
  std::vector<uint32_t> floor_rounds;
  for (int r = 0; r < 5; r++) {
    floor_rounds.push_back(test_run(floor_fd, cif, builds[0].pkt, opt.repeat, TC_ACT_OK));
    for (Build& b : builds) b.rounds.push_back(test_run(b.obj->prog_fd(Prog::FromWl), cif, b.pkt, opt.repeat, TC_ACT_REDIRECT));
  }
  const double floor_ns = median(floor_rounds), prod_ns = median(builds[0].rounds);
  std::printf("\nbuilds side by side: established TCP, no NAT, repeat %d, median of 5 interleaved rounds\n\n", opt.repeat);
  std::printf("| build | ns/packet | x production | x floor |\n|---|---:|---:|---:|\n");
  std::printf("| empty TC program (floor) | %.1f | %.2f | 1.00 |\n", floor_ns, floor_ns / prod_ns);
  for (const Build& b : builds) {
    const double ns = median(b.rounds);
    std::printf("| %s | %.1f | %.2f | %.2f |\n", b.label.c_str(), ns, ns / prod_ns, ns / floor_ns);
  }
}

// Flow events (issue 11 §8, docs/observe.md): what an event costs the datapath (a dropped packet
// with events off and on, interleaved rounds), and the rate the agent's side (ring buffer reader,
// conversion, naming, the bounded store) sustains with no event lost: the programs send paced
// batches of drops at a rising rate, without rate limit, while a reader thread on another CPU
// drains as the agent does; a rate passes when nothing was lost in 1 s.
void flow_events(const Options& opt, uint32_t cif, uint32_t bif) {
  auto o = TcObject::load(test::MapSizes::defaults());
  if (!o.ok()) die(o.error().str());
  TcObject& tc = **o;
  program(tc, cif, bif);
  auto reader = dataplane::FlowEventReader::open(tc.map_fds());
  if (!reader.ok()) die(reader.error().str());
  const int from = tc.prog_fd(Prog::FromWl);
  PacketSpec bad = tcp(kClientMac, kClientHostMac, kClientIp, 40000, kBeIp, kBePort, test::kTcpSyn);
  bad.ip.ihl = 3;  // malformed: dropped (DROP_MALFORMED), one event each
  const Bytes drop = test::build(bad);
  auto events = [&](bool on) {  // on: both kinds, no rate limit (interval 0)
    weir_flow_cfg cfg{};
    if (on) cfg.flags = WEIR_FLOW_CFG_START | WEIR_FLOW_CFG_DROP;
    const uint32_t zero = 0;
    if (bpf_map_update_elem(tc.map_fd(WEIR_MAP_FLOW_CFG), &zero, &cfg, BPF_ANY) != 0) die("writing weir_flowcfg1");
  };
  auto drain = [&] {
    auto n = reader->drain([](const weir_flow_event&) {});
    if (!n.ok()) die(n.error().str());
  };
  // 1. Cost per event in the datapath.
  const int rep = std::min(opt.repeat, 4000);  // below the ring's capacity: nothing lost
  std::vector<uint32_t> off_rounds, on_rounds;
  for (int r = 0; r < 5; r++) {
    events(false);
    off_rounds.push_back(test_run(from, cif, drop, rep, TC_ACT_SHOT));
    events(true);
    on_rounds.push_back(test_run(from, cif, drop, rep, TC_ACT_SHOT));
    drain();
  }
  const double off_ns = median(off_rounds), on_ns = median(on_rounds);
  std::printf("\nflow events: a dropped packet (malformed), repeat %d, median of 5 interleaved rounds\n\n", rep);
  std::printf("| flow events | ns/packet | x off |\n|---|---:|---:|\n");
  std::printf("| off (weir_flowcfg1 zero) | %.1f | 1.00 |\n", off_ns);
  std::printf("| on, no rate limit: one event per packet | %.1f | %.2f |\n", on_ns, on_ns / off_ns);

  // 2. The rate the agent's side sustains with nothing lost.
  agent::FlowRecorder recorder(4096, "bench", nullptr, [](uint32_t) { return std::string("weirb0h"); });
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> consumed{0};
  std::thread consumer([&] {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(opt.cpu == 0 ? 1 : 0, &set);
    sched_setaffinity(0, sizeof(set), &set);
    while (!stop.load()) {
      pollfd p{reader->fd(), POLLIN, 0};
      ::poll(&p, 1, 10);
      auto n = reader->drain([&](const weir_flow_event& ev) { recorder.on_event(ev); });
      if (n.ok()) consumed += *n;
    }
  });
  events(true);
  std::printf("\nflow events sustained: paced batches every ms for 1 s, a reader thread on another CPU "
              "doing the agent's work (convert, name, store)\n\n");
  std::printf("| events/s asked | events/s sent | lost | lost %% |\n|---:|---:|---:|---:|\n");
  uint64_t best = 0;
  for (uint64_t rate : {50000ull, 100000ull, 200000ull, 400000ull, 800000ull, 1600000ull, 3200000ull}) {
    auto before = reader->stats();
    if (!before.ok()) die(before.error().str());
    const int batch = int(rate / 1000);
    const auto t0 = std::chrono::steady_clock::now();
    for (int ms = 0; ms < 1000; ms++) {
      test_run(from, cif, drop, batch, TC_ACT_SHOT);
      std::this_thread::sleep_until(t0 + std::chrono::milliseconds(ms + 1));
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the reader catches up
    auto after = reader->stats();
    if (!after.ok()) die(after.error().str());
    const uint64_t sent = after->sent - before->sent, lost = after->lost - before->lost;
    std::printf("| %llu | %.0f | %llu | %.2f |\n", (unsigned long long)rate, double(sent) / secs,
                (unsigned long long)lost, 100.0 * double(lost) / double(sent + lost));
    if (lost == 0) best = rate;
    else break;
  }
  stop = true;
  consumer.join();
  std::printf("\nsustained with no loss: %llu events/s (the agent's default --flow-rate is 1000 per CPU)\n",
              (unsigned long long)best);
  (void)bif;
}

int run(const Options& opt) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(opt.cpu, &set);
  if (sched_setaffinity(0, sizeof(set), &set) != 0) die("sched_setaffinity: " + std::string(std::strerror(errno)));
  auto ns = test::enter_private_netns();
  if (!ns.ok()) die(ns.error().str());
  auto client = test::add_veth("weirb0h", "weirb0p");
  auto backend = test::add_veth("weirb1h", "weirb1p");
  if (!client.ok() || !backend.ok()) die("creating veth pairs: " + (client.ok() ? backend.error() : client.error()).str());
  const uint32_t cif = client->first, bif = backend->first;

  // The floor: an empty TC program (r0 = TC_ACT_OK; exit).
  const bpf_insn floor_insns[] = {
      {BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, TC_ACT_OK},
      {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
  };
  int floor_fd = bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, "weir_floor", "GPL", floor_insns, 2, nullptr);
  if (floor_fd < 0) die("loading the empty program: " + std::string(std::strerror(errno)));

  // The datapath with compiled-in (production) map sizes.
  auto obj = TcObject::load(test::MapSizes::defaults());
  if (!obj.ok()) die(obj.error().str());
  TcObject& tc = **obj;
  program(tc, cif, bif);
  const int from = tc.prog_fd(Prog::FromWl);
  const Bytes est_ack = establish(tc, cif, bif, 30000);
  const Bytes nat_ack = establish(tc, cif, bif, 31000, kVip, kVipPort);

  // Warm-up.
  test_run(floor_fd, cif, est_ack, opt.repeat / 10 + 1, TC_ACT_OK);
  test_run(from, cif, est_ack, opt.repeat / 10 + 1, TC_ACT_REDIRECT);

  // Repeat mode (paths that leave the packet as it was).
  const double floor_rep = repeated(floor_fd, cif, est_ack, opt.repeat, TC_ACT_OK);
  const double est_rep = repeated(from, cif, est_ack, opt.repeat, TC_ACT_REDIRECT);
  // Breakdown: an ARP frame costs the counter update only (parse stops at the ethertype).
  PacketSpec arp;
  arp.eth.src = kClientMac;
  arp.eth.dst = kClientHostMac;
  arp.eth.type = test::kEthArp;
  arp.raw_l3 = Bytes(28, 0);
  const double arp_rep = repeated(from, cif, test::build(arp), opt.repeat, TC_ACT_OK);

  // repeat=1 mode (each run starts from the original packet).
  auto same = [](const Bytes& b) { return [&b](int) { return b; }; };
  const Single floor_one = single_runs(floor_fd, cif, opt.runs, same(est_ack), TC_ACT_OK);
  const Single est_one = single_runs(from, cif, opt.runs, same(est_ack), TC_ACT_REDIRECT);
  const Single nat_est_one = single_runs(from, cif, opt.runs, same(nat_ack), TC_ACT_REDIRECT);
  // New flows: a distinct 5-tuple per run (source address x port), each creating a NAT pair.
  auto new_flow = [](int i) {
    uint32_t saddr = htonl(ntohl(ip4("10.70.0.0")) + uint32_t(i / 50000));
    return test::build(tcp(kClientMac, kClientHostMac, saddr, uint16_t(10000 + i % 50000), kVip, kVipPort, test::kTcpSyn));
  };
  const Single nat_new_one = single_runs(from, cif, opt.runs, new_flow, TC_ACT_REDIRECT);

  std::printf("weir_bench: BPF_PROG_TEST_RUN, kernel-reported ns per packet, CPU %d\n\n", opt.cpu);
  std::printf("| path | method | ns/packet | x floor |\n|---|---|---:|---:|\n");
  std::printf("| empty TC program (floor) | repeat %d, median of 5 | %.1f | 1.00 |\n", opt.repeat, floor_rep);
  std::printf("| established TCP, no NAT (pod to pod, peer redirect) | repeat %d, median of 5 | %.1f | %.2f |\n",
              opt.repeat, est_rep, est_rep / floor_rep);
  std::printf("| (breakdown) ARP frame: parse + counters only | repeat %d, median of 5 | %.1f | %.2f |\n", opt.repeat,
              arp_rep, arp_rep / floor_rep);
  std::printf("| empty TC program (floor) | %d runs of repeat 1, median (mean) | %.0f (%.1f) | 1.00 |\n", opt.runs,
              floor_one.median_ns, floor_one.mean_ns);
  std::printf("| established TCP, no NAT (pod to pod, peer redirect) | %d runs of repeat 1, median (mean) | %.0f (%.1f) | %.2f |\n",
              opt.runs, est_one.median_ns, est_one.mean_ns, est_one.median_ns / floor_one.median_ns);
  std::printf("| established TCP through NAT (DNAT, peer redirect) | %d runs of repeat 1, median (mean) | %.0f (%.1f) | %.2f |\n",
              opt.runs, nat_est_one.median_ns, nat_est_one.mean_ns, nat_est_one.median_ns / floor_one.median_ns);
  std::printf("| new TCP flow through NAT (SYN: NAT pick, 2 CT creates, DNAT, plain redirect) | %d runs of repeat 1, distinct 5-tuples, median (mean) | %.0f (%.1f) | %.2f |\n",
              opt.runs, nat_new_one.median_ns, nat_new_one.mean_ns, nat_new_one.median_ns / floor_one.median_ns);
  auto insns_from = tc.prog_insns(Prog::FromWl), insns_to = tc.prog_insns(Prog::ToWl);
  std::printf("\nprogram sizes: weir_from_wl %u insns, weir_to_wl %u insns (xlated)\n",
              insns_from.ok() ? *insns_from : 0, insns_to.ok() ? *insns_to : 0);
  compare_builds(opt, floor_fd, cif, bif);
  flow_events(opt, cif, bif);
  close(floor_fd);
  return 0;
}

}  // namespace
}  // namespace weir::bench

int main(int argc, char** argv) {
  return weir::bench::run(weir::bench::parse_options(argc, argv, "weir_bench"));
}
