// The agent's flow store and its observe socket (src/agent/observe_server.h): the store's bounds
// and queries, and real clients on a unix socket in a temporary directory, the server driven on
// this thread by poll() as the agent's loop drives it. The CLI's side: tests/e2e.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/observe_server.h"
#include "calc/flow_filter.h"
#include "datastore_testing.h"
#include "model/flow.h"
#include "util/fd.h"

namespace weir::agent {
namespace {

using namespace std::chrono_literals;
using std::chrono::steady_clock;

constexpr uint8_t kTcp = 6, kUdp = 17;
constexpr const char* kTooSlowLine =
    R"({"error":"weir observe: this client fell more than 4 MiB behind; flows were missed"})";

// Flow `i` (its time), `pad` bytes longer than the smallest (in its node's name).
model::Flow make_flow(int64_t i, uint8_t proto, size_t pad = 0) {
  model::Flow f;
  f.time_unix_ns = 1'700'000'000'000'000'000 + i;
  f.proto = proto;
  f.source.ip = model::Ipv4{0x0a000001};
  f.source.port = 40000;
  f.source.ns = "default";
  f.source.pod = "client";
  f.destination.ip = model::Ipv4{0x0a000002};
  f.destination.port = 80;
  f.node = "node1" + std::string(pad, 'x');
  return f;
}

std::string line(const model::Flow& f) { return model::to_json(f).dump(); }

calc::FlowFilter tcp_only() {
  calc::FlowFilter f;
  f.proto = kTcp;
  return f;
}

std::string request(size_t last, bool follow, const calc::FlowFilter& filter = {}) {
  calc::ObserveRequest r;
  r.filter = filter;
  r.last = last;
  r.follow = follow;
  return calc::to_json(r).dump() + "\n";
}

std::vector<int64_t> times(const std::vector<model::Flow>& flows) {
  std::vector<int64_t> out;
  out.reserve(flows.size());
  for (const auto& f : flows) out.push_back(f.time_unix_ns - 1'700'000'000'000'000'000);
  return out;
}

// A client of the socket, non-blocking: drain() takes what the server has written so far.
struct TestClient {
  Fd fd;
  std::string got;
  bool eof = false;

  void send(const std::string& s) const {
    size_t off = 0;
    while (off < s.size()) {
      ssize_t n = ::send(fd.get(), s.data() + off, s.size() - off, MSG_NOSIGNAL);
      ASSERT_GT(n, 0) << std::strerror(errno);
      off += static_cast<size_t>(n);
    }
  }
  // Reads what is there; true once the server has closed the connection.
  bool drain() {
    char buf[65536];
    for (;;) {
      ssize_t n = ::recv(fd.get(), buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) {
        got.append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno == ECONNRESET) {
        eof = true;
        break;
      } else {
        break;
      }
    }
    return eof;
  }
  // The complete lines received.
  std::vector<std::string> lines() const {
    std::vector<std::string> out;
    size_t start = 0;
    for (size_t nl; (nl = got.find('\n', start)) != std::string::npos; start = nl + 1)
      out.push_back(got.substr(start, nl - start));
    return out;
  }
};

// A connection to `path` (non-blocking); invalid when connect fails (errno says why).
Fd connect_to(const std::string& path) {
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path.c_str());
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) return Fd();
  return fd;
}

// A socket file no one listens on: what an agent that was killed leaves behind.
void make_stale_socket(const std::string& path) {
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path.c_str());
  ASSERT_EQ(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa), 0) << std::strerror(errno);
  ASSERT_EQ(::listen(fd.get(), 1), 0);
}  // closed: the file stays, refusing connections

mode_t file_mode(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return 0;
  return st.st_mode;
}

TEST(FlowStore, KeepsTheLastNAndEvictsTheOldest) {
  FlowStore s(3);
  EXPECT_EQ(s.capacity(), 3u);
  for (int i = 0; i < 5; i++) s.add(make_flow(i, kTcp));
  EXPECT_EQ(s.size(), 3u);
  EXPECT_EQ(s.added(), 5u);
  EXPECT_EQ(s.evicted(), 2u);
  EXPECT_EQ(times(s.last(10, {})), (std::vector<int64_t>{2, 3, 4}));
  EXPECT_EQ(times(s.last(2, {})), (std::vector<int64_t>{3, 4}));

  FlowStore none(0);  // keeps nothing, counts everything
  none.add(make_flow(0, kTcp));
  EXPECT_EQ(none.size(), 0u);
  EXPECT_EQ(none.added(), 1u);
  EXPECT_EQ(none.evicted(), 1u);
  EXPECT_TRUE(none.last(10, {}).empty());
}

TEST(FlowStore, LastFiltersAndKeepsOldestFirst) {
  FlowStore s(10);
  for (int i = 0; i < 10; i++) s.add(make_flow(i, i % 2 == 0 ? kTcp : kUdp));
  EXPECT_EQ(times(s.last(2, tcp_only())), (std::vector<int64_t>{6, 8}));
  EXPECT_EQ(times(s.last(100, tcp_only())), (std::vector<int64_t>{0, 2, 4, 6, 8}));
  EXPECT_EQ(times(s.last(3, {})), (std::vector<int64_t>{7, 8, 9}));
  EXPECT_TRUE(s.last(0, {}).empty());
  calc::FlowFilter icmp;
  icmp.proto = 1;
  EXPECT_TRUE(s.last(10, icmp).empty());
}

class ObserveServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = ObserveServer::listen(path(), [this] { return now_; });
    ASSERT_TRUE(s.ok()) << s.error().str();
    server_.emplace(std::move(*s));
  }

  std::string path(const std::string& name = "observe.sock") const { return (dir_.path() / name).string(); }

  // One turn of the agent's loop for the server: poll() its fds, handle what is ready.
  void pump(int timeout_ms = 0) {
    std::vector<pollfd> fds;
    server_->poll_fds(fds);
    ASSERT_GE(::poll(fds.data(), fds.size(), timeout_ms), 0) << std::strerror(errno);
    server_->on_ready(fds.data(), fds.size(), store_);
  }
  // Turns of the loop until `done()` holds; false after 10 s.
  bool pump_until(const std::function<bool()>& done) {
    const auto deadline = steady_clock::now() + 10s;
    while (!done()) {
      if (steady_clock::now() > deadline) return false;
      pump(5);
    }
    return true;
  }
  // A client connected and accepted.
  TestClient client() {
    TestClient c;
    const size_t before = server_->clients();
    c.fd = connect_to(path());
    EXPECT_TRUE(c.fd.valid()) << std::strerror(errno);
    EXPECT_TRUE(pump_until([&] { return server_->clients() == before + 1; }));
    return c;
  }
  // The error of the one line {"error": "..."} `c` gets before the server closes it ("" when
  // it gets something else).
  std::string error_of(TestClient& c) {
    EXPECT_TRUE(pump_until([&] { return c.drain(); }));
    auto lines = c.lines();
    EXPECT_EQ(lines.size(), 1u) << c.got;
    if (lines.size() != 1) return "";
    auto j = nlohmann::json::parse(lines[0], nullptr, false);
    const bool ok = j.is_object() && j.size() == 1 && j.contains("error") && j["error"].is_string();
    EXPECT_TRUE(ok) << lines[0];
    return ok ? j["error"].get<std::string>() : "";
  }

  weir::testing::TempDir dir_;
  steady_clock::time_point now_ = steady_clock::time_point{} + 1h;
  FlowStore store_{100};
  std::optional<ObserveServer> server_;  // last: closed before the directory is removed
};

TEST_F(ObserveServerTest, SocketIsTheOwnersOnly) {
  EXPECT_TRUE(S_ISSOCK(file_mode(path())));
  EXPECT_EQ(file_mode(path()) & 0777, 0600u);
  EXPECT_EQ(server_->path(), path());
  EXPECT_EQ(server_->clients(), 0u);
}

TEST_F(ObserveServerTest, NonFollowGetsTheMatchingStoredFlowsThenEof) {
  // 8 KiB a flow: the answer (400 KiB) is more than the socket takes at once.
  for (int i = 0; i < 100; i++) store_.add(make_flow(i, i % 2 == 0 ? kTcp : kUdp, 8192));
  TestClient c = client();
  c.send(request(50, false, tcp_only()));
  ASSERT_TRUE(pump_until([&] { return c.drain(); }));
  std::vector<std::string> want;
  for (int i = 0; i < 100; i += 2) want.push_back(line(make_flow(i, kTcp, 8192)));
  EXPECT_EQ(c.lines(), want);
  EXPECT_EQ(c.got.back(), '\n');
  EXPECT_EQ(server_->clients(), 0u);

  // Fewer match than asked for; and the last 3 of every flow.
  TestClient few = client();
  few.send(request(3, false));
  ASSERT_TRUE(pump_until([&] { return few.drain(); }));
  EXPECT_EQ(few.lines(), (std::vector<std::string>{line(make_flow(97, kUdp, 8192)), line(make_flow(98, kTcp, 8192)),
                                                   line(make_flow(99, kUdp, 8192))}));
}

TEST_F(ObserveServerTest, RequestEndedByShutdownIsAnswered) {
  store_.add(make_flow(1, kTcp));
  TestClient c = client();
  std::string req = request(10, false);
  req.pop_back();  // no '\n': the end of the stream ends the request
  c.send(req);
  ASSERT_EQ(::shutdown(c.fd.get(), SHUT_WR), 0);
  ASSERT_TRUE(pump_until([&] { return c.drain(); }));
  EXPECT_EQ(c.lines(), std::vector<std::string>{line(make_flow(1, kTcp))});
}

TEST_F(ObserveServerTest, FollowGetsStoredThenPublishedFlowsThatMatch) {
  store_.add(make_flow(0, kTcp));
  store_.add(make_flow(1, kUdp));
  store_.add(make_flow(2, kTcp));
  TestClient c = client();
  c.send(request(10, true, tcp_only()));
  ASSERT_TRUE(pump_until([&] { return c.drain() || c.lines().size() == 2; }));
  server_->publish(make_flow(3, kUdp));
  server_->publish(make_flow(4, kTcp));
  server_->publish(make_flow(5, kTcp));
  ASSERT_TRUE(pump_until([&] { return c.drain() || c.lines().size() == 4; }));
  for (int i = 0; i < 5; i++) pump(1);  // nothing more comes, and the connection stays open
  EXPECT_FALSE(c.drain());
  EXPECT_EQ(c.lines(), (std::vector<std::string>{line(make_flow(0, kTcp)), line(make_flow(2, kTcp)),
                                                 line(make_flow(4, kTcp)), line(make_flow(5, kTcp))}));
  EXPECT_EQ(server_->clients(), 1u);

  // A follower that shuts its writing side down still gets flows; one that closes is removed.
  TestClient half = client();
  half.send(request(0, true));
  ASSERT_EQ(::shutdown(half.fd.get(), SHUT_WR), 0);
  for (int i = 0; i < 5; i++) pump(1);
  server_->publish(make_flow(6, kUdp));
  ASSERT_TRUE(pump_until([&] { return half.drain() || half.lines().size() == 1; }));
  EXPECT_EQ(half.lines(), std::vector<std::string>{line(make_flow(6, kUdp))});
  EXPECT_EQ(server_->clients(), 2u);
  c.fd.reset();
  half.fd.reset();
  EXPECT_TRUE(pump_until([&] { return server_->clients() == 0; }));
  server_->publish(make_flow(7, kTcp));  // no one to send it to
}

TEST_F(ObserveServerTest, MalformedRequestGetsAnErrorLineThenEof) {
  TestClient not_json = client();
  not_json.send("{\"last\": 3\n");
  EXPECT_NE(error_of(not_json).find("not JSON"), std::string::npos);

  TestClient not_request = client();
  not_request.send("[1, 2]\n");
  EXPECT_NE(error_of(not_request).find("rejected the request"), std::string::npos);

  TestClient too_long = client();
  too_long.send(std::string(ObserveServer::kMaxRequest + 1000, ' '));  // no '\n' yet
  EXPECT_NE(error_of(too_long).find("longer than 64 KiB"), std::string::npos);

  EXPECT_TRUE(pump_until([&] { return server_->clients() == 0; }));
}

TEST_F(ObserveServerTest, StaleSocketIsReplaced) {
  const std::string stale = path("stale.sock");
  make_stale_socket(stale);
  ASSERT_TRUE(S_ISSOCK(file_mode(stale)));
  auto s = ObserveServer::listen(stale);
  ASSERT_TRUE(s.ok()) << s.error().str();
  EXPECT_EQ(file_mode(stale) & 0777, 0600u);
  Fd c = connect_to(stale);
  EXPECT_TRUE(c.valid()) << std::strerror(errno);  // this one listens
}

TEST_F(ObserveServerTest, SecondListenOnLivePathFails) {
  auto again = ObserveServer::listen(path());
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.error().str().find("another agent serves that socket"), std::string::npos) << again.error().str();
  EXPECT_NE(again.error().str().find(path()), std::string::npos) << again.error().str();
  // The live server keeps its socket.
  EXPECT_TRUE(S_ISSOCK(file_mode(path())));
  TestClient c = client();
  c.send(request(1, false));
  EXPECT_TRUE(pump_until([&] { return c.drain(); }));

  // Another kind of file: left alone, named.
  const std::string file = path("regular");
  std::ofstream(file) << "x";
  auto on_file = ObserveServer::listen(file);
  ASSERT_FALSE(on_file.ok());
  EXPECT_NE(on_file.error().str().find(file), std::string::npos) << on_file.error().str();
  EXPECT_NE(on_file.error().str().find("not a socket"), std::string::npos) << on_file.error().str();
  EXPECT_TRUE(S_ISREG(file_mode(file)));
}

TEST_F(ObserveServerTest, MissingDirectoryIsCreatedAndOnlyOurSocketFileIsRemoved) {
  const std::string p = path("run/weir/observe.sock");
  std::optional<ObserveServer> a;
  {
    auto s = ObserveServer::listen(p);
    ASSERT_TRUE(s.ok()) << s.error().str();
    a.emplace(std::move(*s));
  }
  EXPECT_EQ(file_mode(path("run/weir")) & 0777, 0755u);
  EXPECT_TRUE(S_ISDIR(file_mode(path("run"))));
  // Someone removed our file and another server took the path: our end leaves its file alone.
  ASSERT_EQ(::unlink(p.c_str()), 0);
  auto b = ObserveServer::listen(p);
  ASSERT_TRUE(b.ok()) << b.error().str();
  a.reset();
  EXPECT_TRUE(S_ISSOCK(file_mode(p)));
  // A moved-from server removes nothing; the one it moved to removes its file at its end.
  {
    ObserveServer moved = std::move(*b);
    EXPECT_TRUE(S_ISSOCK(file_mode(p)));
  }
  EXPECT_EQ(file_mode(p), 0u);
}

TEST_F(ObserveServerTest, FollowerThatDoesNotReadIsCutOffWithAnErrorLine) {
  TestClient c = client();
  c.send(request(0, true));
  server_->publish(make_flow(0, kTcp, 1024));
  ASSERT_TRUE(pump_until([&] {
    server_->publish(make_flow(0, kTcp, 1024));  // until the request is in: the first one may come early
    return c.drain() || !c.lines().empty();
  }));
  // The client now stops reading. 8 KiB a flow: 7 MiB published, the socket's buffer full.
  c.got.clear();
  const int n = 7 << 7;
  for (int i = 1; i <= n; i++) {
    server_->publish(make_flow(i, kTcp, 8192));
    if (i % 8 == 0) pump(0);
  }
  EXPECT_EQ(server_->clients(), 1u);  // still there: the error line waits for the client
  ASSERT_TRUE(pump_until([&] { return c.drain(); }));
  auto lines = c.lines();
  ASSERT_GE(lines.size(), 2u);
  EXPECT_EQ(lines.back(), kTooSlowLine);
  lines.pop_back();
  // Whole lines, in order, none left out before the cut (what the socket took before the client
  // fell 4 MiB behind; the 4 MiB waiting were dropped), then the error line: not every flow.
  // (Lines before the client stopped reading were flow 0, published more than once: skipped.)
  while (!lines.empty() && lines.front() == line(make_flow(0, kTcp, 1024))) lines.erase(lines.begin());
  ASSERT_FALSE(lines.empty());
  for (size_t i = 0; i < lines.size(); i++)
    ASSERT_EQ(lines[i], line(make_flow(static_cast<int64_t>(i) + 1, kTcp, 8192))) << "line " << i;
  EXPECT_LT(lines.size(), static_cast<size_t>(n) - (ObserveServer::kMaxPending >> 13));
  EXPECT_EQ(c.got.back(), '\n');
  EXPECT_EQ(server_->clients(), 0u);
}

TEST_F(ObserveServerTest, IdleClientIsExpired) {
  TestClient silent = client();
  now_ += 1s;
  TestClient partial = client();
  partial.send("{\"last\":");
  TestClient follower = client();
  follower.send(request(0, true));
  for (int i = 0; i < 5; i++) pump(1);
  EXPECT_EQ(server_->next_expiry(), steady_clock::time_point{} + 1h + 5s);  // silent's

  now_ += 4s - 1ms;  // silent: 5 s less 1 ms since it connected
  server_->expire_idle();
  EXPECT_EQ(server_->clients(), 3u);
  now_ += 1ms;
  server_->expire_idle();
  EXPECT_EQ(server_->clients(), 2u);
  EXPECT_NE(error_of(silent).find("no request within 5 s"), std::string::npos);
  now_ += 1s;
  server_->expire_idle();
  EXPECT_EQ(server_->clients(), 1u);  // the follower, which sent its request, stays
  EXPECT_EQ(server_->next_expiry(), std::nullopt);
  EXPECT_NE(error_of(partial).find("no request within 5 s"), std::string::npos);
  now_ += 1h;
  server_->expire_idle();
  EXPECT_EQ(server_->clients(), 1u);
  EXPECT_FALSE(follower.drain());
}

TEST_F(ObserveServerTest, ClientThatDoesNotTakeItsLastOutputIsClosedAfter5s) {
  // A cut-off follower that never reads again would hold its fd forever.
  TestClient c = client();
  c.send(request(0, true));
  for (int i = 0; i < 5; i++) pump(1);
  for (int i = 0; i < (6 << 7); i++) {
    server_->publish(make_flow(i, kTcp, 8192));
    if (i % 8 == 0) pump(0);
  }
  pump(0);
  EXPECT_EQ(server_->clients(), 1u);
  EXPECT_EQ(server_->next_expiry(), now_ + 5s);
  now_ += 5s;
  server_->expire_idle();
  EXPECT_EQ(server_->clients(), 0u);
}

TEST_F(ObserveServerTest, ClientsBeyondTheLimitGetAnErrorLine) {
  std::vector<TestClient> clients;
  for (size_t i = 0; i < ObserveServer::kMaxClients; i++) clients.push_back(client());
  TestClient extra;
  extra.fd = connect_to(path());
  ASSERT_TRUE(extra.fd.valid());
  EXPECT_NE(error_of(extra).find("try again later"), std::string::npos);
  EXPECT_EQ(server_->clients(), ObserveServer::kMaxClients);
}

}  // namespace
}  // namespace weir::agent
