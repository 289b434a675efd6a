#include "lab/flood.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstring>
#include <random>
#include <thread>

#include <fmt/format.h>

#include "util/fd.h"
#include "util/inet_csum.h"

namespace weir::lab {

namespace {

using Clock = std::chrono::steady_clock;

// An IPv4 + TCP SYN packet (20 + 20 bytes), addresses in network order, rewritten in place per
// source port.
class SynPacket {
 public:
  SynPacket(uint32_t saddr, uint32_t daddr, uint16_t dport, uint32_t seq) {
    uint8_t* ip = b_.data();
    ip[0] = 0x45;
    put_be16(ip + 2, uint16_t(b_.size()));
    ip[6] = 0x40;  // DF
    ip[8] = 64;    // TTL
    ip[9] = IPPROTO_TCP;
    std::memcpy(ip + 12, &saddr, 4);
    std::memcpy(ip + 16, &daddr, 4);
    uint8_t* tcp = ip + 20;
    put_be16(tcp + 2, dport);
    std::memcpy(tcp + 4, &seq, 4);
    tcp[12] = 5 << 4;  // data offset: 20 bytes
    tcp[13] = 0x02;    // SYN
    put_be16(tcp + 14, 64240);
    // Pseudo-header: addresses, protocol, TCP length.
    pseudo_ = csum_add(0, ip + 12, 8) + IPPROTO_TCP + 20;
  }
  const uint8_t* data() const { return b_.data(); }
  size_t size() const { return b_.size(); }
  void set(uint16_t sport, uint16_t ip_id) {
    uint8_t* ip = b_.data();
    uint8_t* tcp = ip + 20;
    put_be16(ip + 4, ip_id);
    put_be16(ip + 10, 0);
    put_be16(ip + 10, csum_fold(csum_add(0, ip, 20)));
    put_be16(tcp, sport);
    put_be16(tcp + 16, 0);
    put_be16(tcp + 16, csum_fold(csum_add(pseudo_, tcp, 20)));
  }

 private:
  std::array<uint8_t, 40> b_{};
  uint32_t pseudo_ = 0;
};

// The source address this namespace's routing picks for `daddr` (a connected UDP socket).
Result<uint32_t> source_for(const sockaddr_in& to) {
  Fd u(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!u) return errno_error("UDP socket (to find the source address)");
  if (::connect(u.get(), reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0)
    return errno_error("no route to " + std::string(inet_ntoa(to.sin_addr)));
  sockaddr_in me{};
  socklen_t len = sizeof me;
  if (::getsockname(u.get(), reinterpret_cast<sockaddr*>(&me), &len) != 0) return errno_error("getsockname");
  return me.sin_addr.s_addr;
}

Status check(const FloodOptions& o) {
  if (o.count < 1) return Error{EINVAL, fmt::format("--count {}: must be at least 1", o.count)};
  if (o.rate < 0) return Error{EINVAL, fmt::format("--rate {}: must be 0 (no limit) or positive", o.rate)};
  if (o.first_port == 0 || o.first_port > o.last_port)
    return Error{EINVAL, fmt::format("source ports {}..{}: need 1 <= first <= last", o.first_port, o.last_port)};
  return {};
}

}  // namespace

std::array<uint8_t, 40> syn_packet(uint32_t saddr, uint32_t daddr, uint16_t sport, uint16_t dport,
                                   uint32_t seq, uint16_t ip_id) {
  SynPacket p(saddr, daddr, dport, seq);
  p.set(sport, ip_id);
  std::array<uint8_t, 40> out{};
  std::memcpy(out.data(), p.data(), out.size());
  return out;
}

std::string FloodReport::str() const {
  const double secs = std::max(static_cast<double>(elapsed.count()), 1.0) / 1000.0;
  return fmt::format("flood {} -> {}: {} SYNs in {} ms ({:.0f}/s), next source port {}\n", source,
                     target, sent, elapsed.count(), sent / secs, next_port);
}

Result<FloodReport> syn_flood(const FloodOptions& o) {
  WEIR_TRY(check(o));
  sockaddr_in to{};
  to.sin_family = AF_INET;
  if (::inet_pton(AF_INET, o.target.ip.c_str(), &to.sin_addr) != 1)
    return Error{EINVAL, fmt::format("target {}: invalid IPv4 address", o.target.str())};
  to.sin_port = htons(o.target.port);
  auto src = source_for(to);
  if (!src) return src.error();
  // IPPROTO_RAW: the packet is sent as built (IP_HDRINCL); the kernel only routes it.
  Fd fd(::socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW));
  if (!fd) return errno_error("raw socket (needs CAP_NET_RAW)");
  std::mt19937 rng(std::random_device{}());
  SynPacket pkt(*src, to.sin_addr.s_addr, o.target.port, rng());
  FloodReport r;
  r.source = inet_ntoa(in_addr{*src});
  r.target = o.target.str();
  const auto start = Clock::now();
  uint16_t port = o.first_port;
  auto id = static_cast<uint16_t>(rng());
  for (int i = 0; i < o.count; i++) {
    if (o.rate > 0) std::this_thread::sleep_until(start + std::chrono::microseconds(int64_t(i) * 1000000 / o.rate));
    pkt.set(port, id++);
    if (::sendto(fd.get(), pkt.data(), pkt.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0)
      return errno_error(fmt::format("sending SYN {} of {} to {}", i + 1, o.count, r.target));
    r.sent++;
    port = port == o.last_port ? o.first_port : uint16_t(port + 1);
  }
  r.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  r.next_port = port;
  return r;
}

}  // namespace weir::lab
