// Lab traffic: the echo-name server run in pods (`weir lab serve`) and the clients used by
// `weir lab client`, the demo and the e2e tests. Every function works in the network
// namespace of the calling thread: wrap calls in in_netns() to run them from a pod.
//
// Protocol: a server started with --name NAME answers every line received on a TCP connection
// and every UDP datagram with "NAME\n", so a client sees which backend answered; a datagram
// that starts with "size N\n" gets "NAME\n" padded to N bytes (large, fragmented answers).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "util/fd.h"
#include "util/result.h"

namespace weir::lab {

using namespace std::chrono_literals;

// ---------------------------------------------------------------- server

struct ServeOptions {
  std::string name;  // what the server answers
  std::vector<uint16_t> tcp_ports;
  std::vector<uint16_t> udp_ports;
};

// Binds every port on 0.0.0.0, prints "ready <name>" on stdout once all sockets are bound,
// then answers forever (one thread, poll; many concurrent TCP connections). Returns only on
// a setup error (port in use, no ports given, ...).
Status serve(const ServeOptions& opts);

// ---------------------------------------------------------------- clients

struct IpPort {
  std::string ip;
  uint16_t port = 0;
  std::string str() const;  // "10.96.0.10:80"
};

// "10.96.0.10:80" -> {ip, port}; Error naming the input when malformed.
Result<IpPort> parse_ip_port(const std::string& s);

// A blocking TCP socket connected to ip:port within `timeout`. The Error carries the errno
// (ECONNREFUSED for a reset/refused connect, ETIMEDOUT on timeout, EHOSTUNREACH, ...).
Result<Fd> tcp_connect(const std::string& ip, uint16_t port,
                       std::chrono::milliseconds timeout = 2s);

// Sends "ping\n" on a connected TCP socket and returns the line answered (without '\n').
// Error ECONNRESET/EPIPE when the peer went away, ETIMEDOUT when no full line came in time.
Result<std::string> tcp_request(int fd, std::chrono::milliseconds timeout = 2s);

// The remote address of a connected socket, "ip:port".
Result<std::string> peer_address(int fd);
// The local address of a bound socket, "ip:port".
Result<std::string> local_address(int fd);

struct UdpAnswer {
  std::string name;  // the answering backend
  std::string from;  // the source address of the reply datagram, "ip:port"
};

// One datagram from a fresh unconnected UDP socket to ip:port; the reply and where it came
// from (recvfrom). Error ETIMEDOUT when nothing came back.
Result<UdpAnswer> udp_request(const std::string& ip, uint16_t port,
                              std::chrono::milliseconds timeout = 2s);

// The largest UDP answer the lab server pads to (and the largest request the client sends).
inline constexpr size_t kMaxUdpAnswer = 60000;

struct SizedUdpAnswer {
  std::string name;  // the answering backend
  std::string from;  // the source address of the reply datagram, "ip:port"
  size_t bytes = 0;  // the size of the answer as received (reassembled)
};

// One datagram of `request_bytes` asking the lab server for an answer of `answer_bytes`
// (NAME\n padded): datagrams larger than the path MTU travel as IP fragments both ways.
Result<SizedUdpAnswer> udp_sized_request(const std::string& ip, uint16_t port, size_t request_bytes,
                                         size_t answer_bytes, std::chrono::milliseconds timeout = 2s);

// One datagram on a *connected* UDP socket: an ICMP port unreachable for it is reported as
// Error ECONNREFUSED by recv (what the tests use to see the "no backend" answer).
Result<std::string> udp_connected_request(const std::string& ip, uint16_t port,
                                          std::chrono::milliseconds timeout = 2s);

enum class Proto { Tcp, Udp };
std::string_view to_string(Proto p);

struct ClientReport;

struct ClientOptions {
  IpPort target;
  Proto proto = Proto::Tcp;
  int count = 10;  // connections (TCP, one request each) or datagrams (UDP)
  std::chrono::milliseconds timeout = 2s;
  // TCP only: keep all `count` connections open and send one request on each of them every
  // `hold_interval` while keep_holding() returns true, reporting each round to on_round.
  bool hold = false;
  std::chrono::milliseconds hold_interval = 1s;
  std::function<bool()> keep_holding;
  std::function<void(int round, const ClientReport&)> on_round;
};

struct ClientReport {
  std::string target;
  Proto proto = Proto::Tcp;
  int requests = 0;
  int answers = 0;
  std::map<std::string, int> backends;  // answering name -> count
  std::map<std::string, int> sources;   // reply source address -> count
  std::map<std::string, int> errors;    // strerror text -> count

  // Human-readable summary, one backend per line.
  std::string str() const;
};

// Runs the requests described by `opts` from the calling thread's network namespace.
ClientReport run_client(const ClientOptions& opts);

}  // namespace weir::lab
