// A small HTTP/1.1 client over TCP, for etcd's v3 JSON gateway (datastore/etcd_client.h): POST
// a JSON body, read the response whole (Content-Length or chunked), or read a chunked response
// as a stream of lines (etcd's watch sends one JSON object per line, for as long as it lasts).
//
// Plain HTTP only: weir talks to etcd on loopback or a trusted underlay (docs/datastore.md says
// what that means for production). Every wait is bounded by a deadline; every size by a limit.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/fd.h"
#include "util/result.h"

namespace weir::datastore::http {

using Clock = std::chrono::steady_clock;

// Largest response body (or streamed line) read; a larger one is an error, not a memory blowup.
inline constexpr size_t kMaxBody = size_t{512} << 20;

struct Endpoint {
  std::string host;  // a name or an IPv4 address
  uint16_t port = 0;
  // "http://host:port".
  std::string url() const;
};

// "http://HOST:PORT" (a trailing '/' is allowed). https://, a missing or bad port, a path or
// anything else is an error naming the URL and what is wrong.
Result<Endpoint> parse_url(std::string_view url);

struct Response {
  int status = 0;
  std::string body;
};

using Headers = std::vector<std::pair<std::string, std::string>>;

class Connection {
 public:
  // Connects (IPv4, TCP keepalive probing a silent peer after 5 s) before `deadline`. Errors
  // carry errno and the endpoint.
  static Result<Connection> open(const Endpoint& ep, Clock::time_point deadline);

  Connection(Connection&&) noexcept = default;
  Connection& operator=(Connection&&) noexcept = default;

  // POSTs `body` (Content-Type: application/json) to `path` and reads the whole response before
  // `deadline`. The connection is reusable afterwards unless closed() says otherwise.
  Result<Response> post(std::string_view path, std::string_view body, Clock::time_point deadline,
                        const Headers& headers = {});

  // POSTs `body` and reads the status line and headers before `deadline`; the body is then read
  // with next_line(). A status other than 200 is returned with the whole (bounded) body read.
  Result<Response> post_stream(std::string_view path, std::string_view body,
                               Clock::time_point deadline, const Headers& headers = {});
  // The next line of a streamed body (without '\n'), nullopt when none arrived before
  // `deadline`. An error when the body ended (the server closed the stream) or the connection
  // failed.
  Result<std::optional<std::string>> next_line(Clock::time_point deadline);

  // The server said it closes the connection, or the connection failed.
  bool closed() const { return closed_; }
  const Endpoint& endpoint() const { return ep_; }
  int fd() const { return fd_.get(); }

 private:
  Connection(Fd fd, Endpoint ep) : fd_(std::move(fd)), ep_(std::move(ep)) {}
  Status send_request(std::string_view path, std::string_view body, Clock::time_point deadline,
                      const Headers& headers);
  Result<int> read_head(Clock::time_point deadline);
  // Reads more bytes into in_; false on timeout. An error on EOF or a failure.
  Result<bool> fill(Clock::time_point deadline);
  // Moves what in_ holds of the body into body_; sets done_ at its end.
  Status decode();
  Result<Response> read_whole(int status, Clock::time_point deadline);
  Error fail(Error e);

  Fd fd_;
  Endpoint ep_;
  std::string in_;    // bytes received, not yet decoded
  std::string body_;  // decoded body bytes, not yet consumed
  bool chunked_ = false;
  std::optional<uint64_t> remaining_;  // Content-Length left, or the current chunk's bytes left
  bool chunk_crlf_ = false;            // a chunk's data ended: its CRLF comes next
  bool trailers_ = false;              // the last chunk came: trailers until an empty line
  bool done_ = false;                  // the body ended
  size_t scanned_ = 0;                 // next_line(): body_ bytes known to hold no '\n'
  bool closed_ = false;
  bool close_after_ = false;  // "Connection: close"
};

}  // namespace weir::datastore::http
