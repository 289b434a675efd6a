// The agent's Prometheus metrics: the text format (prom::Writer, histograms, escaping), the page
// render_metrics() builds, --metrics-listen parsing, and the HTTP answers of a real socket on
// loopback. The scrape of a live agent: tests/e2e/metrics_test.cpp.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "agent/metrics.h"
#include "util/fd.h"
#include "util/prom.h"

namespace weir {
namespace {

TEST(Prom, HistogramIsCumulativeWithSumAndCount) {
  prom::Histogram h({0.1, 1, 10});
  for (double v : {0.05, 0.1, 0.5, 2.0, 50.0}) h.observe(v);
  EXPECT_EQ(h.cumulative(0), 2u);  // 0.05 and 0.1 (le is inclusive)
  EXPECT_EQ(h.cumulative(1), 3u);
  EXPECT_EQ(h.cumulative(2), 4u);
  EXPECT_EQ(h.count(), 5u);
  EXPECT_DOUBLE_EQ(h.sum(), 52.65);
  prom::Writer w;
  w.family("x_seconds", "histogram", "help");
  w.histogram("x_seconds", {{"phase", "calc"}}, h);
  EXPECT_EQ(w.str(),
            "# HELP x_seconds help\n# TYPE x_seconds histogram\n"
            "x_seconds_bucket{phase=\"calc\",le=\"0.1\"} 2\n"
            "x_seconds_bucket{phase=\"calc\",le=\"1\"} 3\n"
            "x_seconds_bucket{phase=\"calc\",le=\"10\"} 4\n"
            "x_seconds_bucket{phase=\"calc\",le=\"+Inf\"} 5\n"
            "x_seconds_sum{phase=\"calc\"} 52.65\n"
            "x_seconds_count{phase=\"calc\"} 5\n");
}

TEST(Prom, LabelValuesAndNumbersAreEscapedAndFormatted) {
  EXPECT_EQ(prom::escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  EXPECT_EQ(prom::format_value(3), "3");
  EXPECT_EQ(prom::format_value(0.25), "0.25");
  EXPECT_EQ(prom::format_value(1.0 / 0.0), "+Inf");
  prom::Writer w;
  w.family("n_total", "counter", "two\nlines \\ here");
  w.sample("n_total", {{"iface", "we\"ird"}}, 7);
  EXPECT_EQ(w.str(), "# HELP n_total two\\nlines \\\\ here\n# TYPE n_total counter\nn_total{iface=\"we\\\"ird\"} 7\n");
}

// Every sample line of the page, checked against the format's grammar; every family announced
// (HELP, TYPE) before its samples; names weir_*; no per-flow labels.
struct Page {
  std::map<std::string, std::string> types;      // family -> type
  std::map<std::string, double> samples;         // "name{labels}" -> value
  std::set<std::string> label_names;
};

Page parse_page(const std::string& text) {
  static const std::regex sample(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? (\S+)$)");
  static const std::regex label(R"(([a-zA-Z_][a-zA-Z0-9_]*)=")");
  Page p;
  std::istringstream in(text);
  std::string line, last_help;
  while (std::getline(in, line)) {
    if (line.rfind("# HELP ", 0) == 0) {
      last_help = line.substr(7, line.find(' ', 7) - 7);
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      std::string name = line.substr(7, line.find(' ', 7) - 7);
      EXPECT_EQ(name, last_help) << "TYPE without its HELP: " << line;
      EXPECT_FALSE(p.types.contains(name)) << "family announced twice: " << name;
      p.types[name] = line.substr(line.rfind(' ') + 1);
      continue;
    }
    std::smatch m;
    EXPECT_TRUE(std::regex_match(line, m, sample)) << "not a sample line: '" << line << "'";
    if (m.empty()) continue;
    std::string name = m[1];
    std::string family = name;
    for (const char* suffix : {"_bucket", "_sum", "_count"})
      if (!p.types.contains(family) && family.size() > strlen(suffix) &&
          family.compare(family.size() - strlen(suffix), std::string::npos, suffix) == 0)
        family.resize(family.size() - strlen(suffix));
    EXPECT_TRUE(p.types.contains(family)) << "sample before its family: " << line;
    EXPECT_EQ(name.rfind("weir_", 0), 0u) << line;
    std::string labels = m[2];
    for (std::sregex_iterator it(labels.begin(), labels.end(), label), end; it != end; ++it)
      p.label_names.insert((*it)[1]);
    p.samples[name + labels] = std::stod(m[m.size() - 1]);
  }
  return p;
}

TEST(AgentMetrics, PageHasEveryFamilyInTheFormatWithLowCardinalityLabels) {
  agent::SyncMetrics s;
  s.phase_seconds["calc"].observe(0.002);
  s.phase_seconds["datastore"].observe(0.010);
  s.syncs["full"] = 2;
  s.syncs["rejected"] = 1;
  s.invalid_resources = 3;
  s.last_success_unix = 1.7e9;
  s.policy_seconds.observe(0.3);
  s.scan_seconds.observe(0.001);
  s.scan_expired = 5;
  agent::MapFigures f;
  agent::MapFigures::Iface itf;
  itf.name = "weirab12p3";
  weir_counters_val v{};
  v.c[WEIR_CNT_DROP_BY_POLICY] = 4;
  v.c[WEIR_CNT_ACCEPT_BY_POLICY] = 9;
  v.c[WEIR_CNT_TOTAL] = 13;
  itf.hooks[WEIR_HOOK_EGRESS] = v;
  itf.hooks[WEIR_HOOK_INGRESS] = weir_counters_val{};
  f.counters.push_back(itf);
  f.ct_entries = 10;
  f.ct_capacity = 1024;
  f.nat_frontends = 2;
  f.nat_backends = 6;
  f.ipset_members = 7;
  f.flow_events_sent = 11;
  f.flow_events_lost = 2;
  f.flow_events_rate_limited = 30;
  f.flow_records = 11;
  f.flow_records_capacity = 4096;
  const std::string text = agent::render_metrics(s, f, "node-a", "0.1.0");
  Page p = parse_page(text);
  for (const char* fam :
       {"weir_build_info", "weir_packets_total", "weir_packet_events_total", "weir_conntrack_entries",
        "weir_conntrack_capacity_entries", "weir_nat_frontends", "weir_nat_backends", "weir_ipset_members",
        "weir_sync_duration_seconds", "weir_syncs_total", "weir_datastore_invalid_resources_total",
        "weir_last_successful_sync_timestamp_seconds", "weir_policy_apply_duration_seconds",
        "weir_conntrack_scan_duration_seconds", "weir_conntrack_scan_removed_entries_total",
        "weir_flow_events_sent_total", "weir_flow_events_lost_total", "weir_flow_records",
        "weir_flow_records_capacity"})
    EXPECT_TRUE(p.types.contains(fam)) << fam << " missing:\n" << text;
  EXPECT_EQ(p.samples.at("weir_packets_total{iface=\"weirab12p3\",hook=\"egress\",verdict=\"dropped\",reason=\"dropped_by_policy\"}"), 4);
  EXPECT_EQ(p.samples.at("weir_packets_total{iface=\"weirab12p3\",hook=\"egress\",verdict=\"accepted\",reason=\"accepted_by_policy\"}"), 9);
  EXPECT_EQ(p.samples.at("weir_packets_total{iface=\"weirab12p3\",hook=\"ingress\",verdict=\"dropped\",reason=\"dropped_by_policy\"}"), 0);
  EXPECT_FALSE(text.find("hook=\"xdp\"") != std::string::npos) << "a hook without a program has no samples";
  EXPECT_EQ(p.samples.at("weir_conntrack_capacity_entries"), 1024);
  EXPECT_EQ(p.samples.at("weir_syncs_total{result=\"rejected\"}"), 1);
  EXPECT_EQ(p.samples.at("weir_syncs_total{result=\"incremental\"}"), 0);
  EXPECT_EQ(p.samples.at("weir_sync_duration_seconds_bucket{phase=\"calc\",le=\"+Inf\"}"),
            p.samples.at("weir_sync_duration_seconds_count{phase=\"calc\"}"));
  EXPECT_EQ(p.samples.at("weir_conntrack_scan_removed_entries_total{cause=\"expired\"}"), 5);
  EXPECT_EQ(p.samples.at("weir_build_info{version=\"0.1.0\",node=\"node-a\"}"), 1);
  EXPECT_EQ(p.samples.at("weir_flow_events_sent_total"), 11);
  EXPECT_EQ(p.samples.at("weir_flow_events_lost_total{reason=\"ring_buffer_full\"}"), 2);
  EXPECT_EQ(p.samples.at("weir_flow_events_lost_total{reason=\"rate_limited\"}"), 30);
  EXPECT_EQ(p.types.at("weir_flow_events_lost_total"), "counter");
  EXPECT_EQ(p.types.at("weir_sync_duration_seconds"), "histogram");
  EXPECT_EQ(p.types.at("weir_packets_total"), "counter");
  // Labels: bounded sets only (no addresses, ports or flows).
  EXPECT_EQ(p.label_names, (std::set<std::string>{"cause", "hook", "iface", "le", "name", "node", "phase",
                                                  "reason", "result", "verdict", "version"}));
}

TEST(AgentMetrics, ListenAddressErrorsNameWhatIsWrong) {
  auto ok = agent::parse_listen_address("127.0.0.1:9091");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->first, "127.0.0.1");
  EXPECT_EQ(ok->second, 9091);
  for (auto [spec, why] : std::vector<std::pair<std::string, std::string>>{
           {"9091", "expected HOST:PORT"},
           {"localhost:9091", "'localhost' is not an IPv4 address"},
           {"127.0.0.1:http", "'http' is not a port"},
           {"127.0.0.1:70000", "'70000' is not a port"},
           {"127.0.0.1:", "'' is not a port"}}) {
    auto r = agent::parse_listen_address(spec);
    ASSERT_FALSE(r.ok()) << spec;
    EXPECT_NE(r.error().str().find(why), std::string::npos) << r.error().str();
  }
}

// One HTTP exchange with a server that serves one connection: `request` sent (nothing when
// empty), then everything the server sends until it closes.
std::string exchange(const agent::MetricsServer& srv, const std::string& request) {
  std::string reply;
  std::thread client([&] {
    Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(srv.port());
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    if (!request.empty()) (void)!::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL);
    char buf[4096];
    for (ssize_t n; (n = ::recv(fd.get(), buf, sizeof buf, 0)) > 0;) reply.append(buf, static_cast<size_t>(n));
  });
  pollfd p{srv.fd(), POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 5000), 1);
  srv.serve_one([] { return std::string("weir_up 1\n"); });
  client.join();
  return reply;
}

TEST(AgentMetrics, ServesMetricsAnswersOtherRequestsAndDropsSilentClients) {
  auto srv = agent::MetricsServer::listen("127.0.0.1:0");
  ASSERT_TRUE(srv.ok()) << srv.error().str();
  ASSERT_NE(srv->port(), 0);
  std::string ok = exchange(*srv, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(ok.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << ok;
  EXPECT_NE(ok.find("Content-Type: text/plain; version=0.0.4"), std::string::npos) << ok;
  EXPECT_NE(ok.find("Content-Length: 10\r\n"), std::string::npos) << ok;
  EXPECT_EQ(ok.substr(ok.size() - 10), "weir_up 1\n");
  EXPECT_EQ(exchange(*srv, "GET / HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404", 0), 0u);
  EXPECT_EQ(exchange(*srv, "POST /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 405", 0), 0u);
  // A client that connects and says nothing is closed after the timeout, unanswered.
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(exchange(*srv, ""), "") << "the server answered a client that sent nothing";
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, std::chrono::milliseconds(1900));
  EXPECT_LT(took, std::chrono::milliseconds(4000));
  // A port in use is an error naming the address.
  auto again = agent::MetricsServer::listen("127.0.0.1:" + std::to_string(srv->port()));
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.error().str().find("bind"), std::string::npos) << again.error().str();
}

}  // namespace
}  // namespace weir
