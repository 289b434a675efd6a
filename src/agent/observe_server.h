// The agent's flow store and the unix socket `weir observe` reads it from (docs/observe.md).
//
// The agent is one thread: the listening socket and every client are fds of its event loop.
// Protocol: the client connects to <state dir>/observe.sock and sends one line, the JSON of a
// calc::ObserveRequest; the agent answers one line per flow, the JSON of model::to_json(Flow)
// (JSON Lines): the last `last` stored flows that match, oldest first; then, when `follow`, each
// new flow that matches, as it comes, until the client closes. Without `follow` the agent closes
// the connection after the stored flows. A request that is not valid JSON or not a request gets
// one line {"error": "<what is wrong>"} and the connection is closed.
//
// Nothing here blocks the agent: sockets are non-blocking; what a client cannot take yet waits in
// its own buffer, bounded (kMaxPending): a follower that falls that far behind is sent
// {"error": "...too slow..."} when it can take it and is closed, so that it knows it missed
// flows. A client that has not sent its request within 5 s is closed.
#pragma once

#include <poll.h>

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "calc/flow_filter.h"
#include "model/flow.h"
#include "util/fd.h"
#include "util/result.h"

namespace weir::agent {

// The last `capacity` flows (older ones are dropped first): bounded memory whatever the rate.
class FlowStore {
 public:
  explicit FlowStore(size_t capacity);
  void add(model::Flow f);
  // The last `n` flows that match `filter`, oldest first (fewer when fewer match).
  std::vector<model::Flow> last(size_t n, const calc::FlowFilter& filter) const;
  size_t size() const { return flows_.size(); }
  size_t capacity() const { return capacity_; }
  uint64_t added() const { return added_; }      // flows added since start
  uint64_t evicted() const { return evicted_; }  // flows dropped to make room

 private:
  size_t capacity_;
  std::deque<model::Flow> flows_;
  uint64_t added_ = 0, evicted_ = 0;
};

class ObserveServer {
 public:
  // Bytes a follower may fall behind (the stored flows of its answer not counted: the store's
  // capacity bounds them).
  static constexpr size_t kMaxPending = 4 << 20;
  static constexpr size_t kMaxRequest = 64 << 10;  // a longer request line is refused
  static constexpr size_t kMaxClients = 64;        // more are answered an error and closed
  static constexpr std::chrono::seconds kIdleTimeout{5};
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  // Listens on the unix stream socket `path` (mode 0600; its directory is created, 0755, when
  // missing). A socket file left there by an agent that is gone is replaced; a live one
  // (something accepts connections there) is an error, as is any other file at that path.
  // `clock` times the 5 s limits (the tests' own clock; steady_clock::now by default).
  static Result<ObserveServer> listen(const std::string& path, Clock clock = std::chrono::steady_clock::now);
  ObserveServer(ObserveServer&&) noexcept;
  ObserveServer& operator=(ObserveServer&&) noexcept;
  ~ObserveServer();  // removes the socket file

  // The fds to poll: the listening socket, then every client (POLLIN while its request is
  // incomplete and while it follows, to see it go; POLLOUT while it has pending output).
  // Appended to `out`.
  void poll_fds(std::vector<pollfd>& out) const;
  // Handles what poll() reported for the entries poll_fds() appended (`ready` points at the
  // first of them, `n` entries): accepts, reads requests, answers from `store`, writes pending
  // output, closes what is finished or broken.
  void on_ready(const pollfd* ready, size_t n, const FlowStore& store);
  // A new flow: queued for each following client whose filter matches.
  void publish(const model::Flow& f);
  // Closes clients that have not sent their request within 5 s, and clients being closed that
  // have not taken any of their last output (an error line, the end of an answer) for 5 s (call
  // once per loop turn).
  void expire_idle();
  // When expire_idle() has something to do next (nullopt: nothing before more input comes), for
  // the loop's poll() timeout: a client's 5 s limit, or 1 s after a failed accept.
  std::optional<std::chrono::steady_clock::time_point> next_expiry() const;

  const std::string& path() const { return path_; }
  size_t clients() const;

 private:
  struct Client;
  ObserveServer(Fd listen_fd, std::string path, dev_t dev, ino_t ino, Clock clock);
  void accept_all();
  void on_client(Client& c, short revents, const FlowStore& store);
  void read_client(Client& c, const FlowStore& store);
  void answer(Client& c, const FlowStore& store);
  void flush(Client& c);
  void remove_socket_file();

  Fd listen_;
  std::string path_;
  dev_t dev_ = 0;  // the socket file we bound: the destructor removes only that one
  ino_t ino_ = 0;
  Clock clock_;
  std::vector<Client> clients_;
  // accept4 failed (EMFILE...): logged once, and retried by expire_idle() rather than polled
  // (the connection waiting in the backlog would make every poll() return at once).
  bool accept_failing_ = false;
};

}  // namespace weir::agent
