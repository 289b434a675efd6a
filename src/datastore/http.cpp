#include "datastore/http.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <memory>

#include "model/validation.h"

namespace weir::datastore::http {

namespace {

constexpr size_t kMaxHead = size_t{64} * 1024;
constexpr size_t kMaxChunkLine = 1024;

int ms_until(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return int(std::clamp<int64_t>(left.count(), 0, int64_t{1000} * 1000));
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

// Waits for `events` on fd until the deadline: 1 ready, 0 timed out, -1 error (errno).
int wait_fd(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, ms_until(deadline));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n;
    return 1;
  }
}

void set_keepalive(int fd) {
  int on = 1, idle = 5, intvl = 2, cnt = 3;
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
}

}  // namespace

std::string Endpoint::url() const { return fmt::format("http://{}:{}", host, port); }

Result<Endpoint> parse_url(std::string_view url) {
  auto bad = [&](std::string_view why) {
    return make_error("\"{}\": {} (expected http://HOST:PORT)", model::clip(url), why);
  };
  constexpr std::string_view kScheme = "http://";
  if (url.rfind("https://", 0) == 0) return bad("TLS (https) is not supported");
  if (url.rfind(kScheme, 0) != 0) return bad("not an http:// URL");
  std::string_view rest = url.substr(kScheme.size());
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find('/') != std::string_view::npos) return bad("a path is not allowed");
  size_t colon = rest.rfind(':');
  if (colon == std::string_view::npos) return bad("no port");
  std::string_view host = rest.substr(0, colon), port = rest.substr(colon + 1);
  if (host.empty()) return bad("no host");
  if (host.find_first_of("@[] ") != std::string_view::npos) return bad("bad host");
  unsigned p = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (port.empty() || ec != std::errc() || ptr != port.data() + port.size() || p == 0 || p > 65535)
    return bad("bad port");
  return Endpoint{std::string(host), uint16_t(p)};
}

Result<Connection> Connection::open(const Endpoint& ep, Clock::time_point deadline) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::string port = std::to_string(ep.port);
  if (int rc = ::getaddrinfo(ep.host.c_str(), port.c_str(), &hints, &res); rc != 0)
    return make_error("{}: cannot resolve host: {}", ep.url(), ::gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(res, ::freeaddrinfo);
  Error last{ECONNREFUSED, "connect " + ep.url()};
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    Fd fd(::socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) return errno_error("socket for " + ep.url());
    if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
      if (errno != EINPROGRESS) {
        last = errno_error("connect " + ep.url());
        continue;
      }
      int w = wait_fd(fd.get(), POLLOUT, deadline);
      if (w == 0) {
        last = Error{ETIMEDOUT, "connect " + ep.url()};
        continue;
      }
      int err = 0;
      socklen_t len = sizeof(err);
      if (w < 0 || ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      if (err != 0) {
        last = Error{err, "connect " + ep.url()};
        continue;
      }
    }
    set_keepalive(fd.get());
    return Connection(std::move(fd), ep);
  }
  return last;
}

Error Connection::fail(Error e) {
  closed_ = true;
  return e;
}

Status Connection::send_request(std::string_view path, std::string_view body,
                                Clock::time_point deadline, const Headers& headers) {
  if (closed_) return Error{ENOTCONN, ep_.url() + ": connection closed"};
  std::string req = fmt::format(
      "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\n"
      "Content-Length: {}\r\n",
      path, ep_.host, ep_.port, body.size());
  for (const auto& [k, v] : headers) req += fmt::format("{}: {}\r\n", k, v);
  req += "\r\n";
  req += body;
  size_t sent = 0;
  while (sent < req.size()) {
    ssize_t n = ::send(fd_.get(), req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += size_t(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int w = wait_fd(fd_.get(), POLLOUT, deadline);
      if (w == 0)
        return fail(Error{ETIMEDOUT, fmt::format("{}{}: sending the request", ep_.url(), path)});
      if (w < 0) return fail(errno_error(ep_.url() + ": poll"));
      continue;
    }
    return fail(errno_error(fmt::format("{}{}: sending the request", ep_.url(), path)));
  }
  return {};
}

Result<bool> Connection::fill(Clock::time_point deadline) {
  int w = wait_fd(fd_.get(), POLLIN, deadline);
  if (w == 0) return false;
  if (w < 0) return fail(errno_error(ep_.url() + ": poll"));
  char buf[64 * 1024];
  for (;;) {
    ssize_t n = ::recv(fd_.get(), buf, sizeof(buf), 0);
    if (n > 0) {
      in_.append(buf, size_t(n));
      return true;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    if (n == 0) {
      closed_ = true;
      if (!chunked_ && !remaining_ && !done_) {  // a body that lasts until the server closes
        done_ = true;
        return true;
      }
      return Error{ECONNRESET, ep_.url() + ": the server closed the connection"};
    }
    return fail(errno_error(ep_.url() + ": receiving"));
  }
}

Result<int> Connection::read_head(Clock::time_point deadline) {
  chunked_ = chunk_crlf_ = trailers_ = done_ = close_after_ = false;
  remaining_.reset();
  body_.clear();
  size_t end;
  while ((end = in_.find("\r\n\r\n")) == std::string::npos) {
    if (in_.size() > kMaxHead)
      return fail(make_error("{}: response head over {} bytes", ep_.url(), kMaxHead));
    auto r = fill(deadline);
    if (!r) return r.error();
    if (!*r) return fail(Error{ETIMEDOUT, ep_.url() + ": waiting for the response"});
  }
  std::string head = in_.substr(0, end);
  in_.erase(0, end + 4);
  std::string_view h(head);
  size_t eol = h.find("\r\n");
  std::string_view status_line = h.substr(0, eol);
  // "HTTP/1.1 200 OK"
  int status = 0;
  if (status_line.rfind("HTTP/1.", 0) != 0 || status_line.size() < 12 ||
      std::from_chars(status_line.data() + 9, status_line.data() + 12, status).ec != std::errc())
    return fail(
        make_error("{}: not an HTTP response: \"{}\"", ep_.url(), model::clip(status_line)));
  bool has_length = false;
  while (eol != std::string_view::npos) {
    h.remove_prefix(eol + 2);
    eol = h.find("\r\n");
    std::string_view line = h.substr(0, eol);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view name = trim(line.substr(0, colon)), value = trim(line.substr(colon + 1));
    if (iequals(name, "Content-Length")) {
      uint64_t n = 0;
      if (std::from_chars(value.data(), value.data() + value.size(), n).ec != std::errc() ||
          n > kMaxBody)
        return fail(make_error("{}: bad or too large Content-Length \"{}\"", ep_.url(),
                               model::clip(value)));
      remaining_ = n;
      has_length = true;
    } else if (iequals(name, "Transfer-Encoding")) {
      chunked_ = iequals(value, "chunked");
    } else if (iequals(name, "Connection")) {
      close_after_ = iequals(value, "close");
    }
  }
  if (chunked_) remaining_.reset();
  if (!chunked_ && !has_length) close_after_ = true;  // the body lasts until the server closes
  return status;
}

Status Connection::decode() {
  while (!done_) {
    if (chunked_) {
      if (chunk_crlf_) {
        if (in_.size() < 2) return {};
        if (in_.compare(0, 2, "\r\n") != 0)
          return fail(make_error("{}: bad chunked framing (no CRLF after a chunk)", ep_.url()));
        in_.erase(0, 2);
        chunk_crlf_ = false;
      }
      if (!remaining_) {
        size_t eol = in_.find("\r\n");
        if (eol == std::string::npos) {
          if (in_.size() > kMaxChunkLine)
            return fail(make_error("{}: bad chunk size line", ep_.url()));
          return {};
        }
        if (trailers_) {  // after the last chunk: trailers, then an empty line
          if (eol == 0) done_ = true;
          in_.erase(0, eol + 2);
          continue;
        }
        uint64_t size = 0;
        auto [ptr, ec] = std::from_chars(in_.data(), in_.data() + eol, size, 16);
        if (ec != std::errc() || ptr == in_.data() || size > kMaxBody)
          return fail(
              make_error("{}: bad chunk size \"{}\"", ep_.url(), model::clip(in_.substr(0, eol))));
        in_.erase(0, eol + 2);
        if (size == 0) {
          trailers_ = true;
          continue;
        }
        remaining_ = size;
      }
      size_t take = size_t(std::min<uint64_t>(*remaining_, in_.size()));
      body_.append(in_, 0, take);
      in_.erase(0, take);
      *remaining_ -= take;
      if (*remaining_ > 0) break;
      remaining_.reset();
      chunk_crlf_ = true;
    } else if (remaining_) {
      size_t take = size_t(std::min<uint64_t>(*remaining_, in_.size()));
      body_.append(in_, 0, take);
      in_.erase(0, take);
      *remaining_ -= take;
      if (*remaining_ == 0) done_ = true;
      break;
    } else {
      body_ += in_;
      in_.clear();
      break;
    }
  }
  if (body_.size() > kMaxBody)
    return fail(make_error("{}: response body over {} bytes", ep_.url(), kMaxBody));
  return {};
}

Result<Response> Connection::read_whole(int status, Clock::time_point deadline) {
  for (;;) {
    WEIR_TRY(decode());
    if (done_) break;
    auto r = fill(deadline);
    if (!r) return r.error();
    if (!*r) return fail(Error{ETIMEDOUT, ep_.url() + ": waiting for the response body"});
  }
  if (close_after_) closed_ = true;
  trailers_ = false;
  return Response{status, std::exchange(body_, {})};
}

Result<Response> Connection::post(std::string_view path, std::string_view body,
                                  Clock::time_point deadline, const Headers& headers) {
  WEIR_TRY(send_request(path, body, deadline, headers));
  auto status = read_head(deadline);
  if (!status) return status.error();
  return read_whole(*status, deadline);
}

Result<Response> Connection::post_stream(std::string_view path, std::string_view body,
                                         Clock::time_point deadline, const Headers& headers) {
  WEIR_TRY(send_request(path, body, deadline, headers));
  auto status = read_head(deadline);
  if (!status) return status.error();
  if (*status != 200) return read_whole(*status, deadline);
  scanned_ = 0;
  return Response{200, ""};
}

Result<std::optional<std::string>> Connection::next_line(Clock::time_point deadline) {
  for (;;) {
    size_t nl = body_.find('\n', scanned_);
    if (nl != std::string::npos) {
      std::string line = body_.substr(0, nl);
      body_.erase(0, nl + 1);
      scanned_ = 0;
      return std::optional<std::string>(std::move(line));
    }
    scanned_ = body_.size();
    if (done_) {
      closed_ = true;
      return Error{ECONNRESET, ep_.url() + ": the server ended the stream"};
    }
    auto r = fill(deadline);
    if (!r) return r.error();
    if (!*r) return std::optional<std::string>();
    WEIR_TRY(decode());
  }
}

}  // namespace weir::datastore::http
