// Helpers shared by the e2e tests: parsers for the `weir bpf` dumps (the seed formats) and
// polling.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <iostream>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "lab/lab.h"
#include "lab/process.h"

namespace weir::e2e {

using namespace std::chrono_literals;

#ifndef WEIR_BINARY
#error "WEIR_BINARY (path of the weir binary) must be defined by the build"
#endif
inline constexpr const char* kWeirBinary = WEIR_BINARY;

// Fails the current test (never skips) when the tests cannot run here.
inline void require_root() {
  ASSERT_EQ(::geteuid(), 0u) << "the e2e tests need root: they create network namespaces and "
                                "load BPF programs (run them with sudo)";
}

// The lab most tests start from: `pods` pods and the agent built with the tests, logging at
// debug level (what a failing test's output then shows).
inline lab::LabSpec lab_spec(int pods = 3) {
  lab::LabSpec spec;
  spec.pods = pods;
  spec.weir_binary = kWeirBinary;
  spec.agent_log_level = "debug";
  return spec;
}

// A ClusterIP service `vip`:80/TCP -> 8080 ("web", unless `name` says otherwise), with one ready
// backend per pod of `pods` (their servers must listen on 8080), written to `file`.
inline Status write_web_service(lab::Lab& lab, const std::string& vip,
                                      const std::vector<std::string>& pods,
                                      const std::string& file = "svc-web.yaml") {
  lab::ServiceDef svc;
  svc.cluster_ip = vip;
  svc.ports = {{"http", "TCP", 80, 8080}};
  auto backends = lab.backends(pods);
  if (!backends.ok()) return backends.error();
  return lab.write_service(file, svc, *backends);
}

// Polls pred() every `every` until it returns true or `timeout` passes; the last result.
template <typename P>
bool wait_until(P pred, std::chrono::milliseconds timeout,
                std::chrono::milliseconds every = 100ms) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(every);
  }
}

// ---------------------------------------------------------------- nat dump
//   10.96.0.10 port 80 proto 6 id 2 count 3 local 3
//   	2:0 10.65.0.3:8080
struct NatFrontend {
  std::string vip;
  int port = 0;
  int proto = 0;
  int id = 0;
  int count = 0;
  int local = 0;
  std::vector<std::string> backends;  // "ip:port", in ordinal order
};

inline std::vector<NatFrontend> parse_nat_dump(const std::string& out) {
  static const std::regex fe(
      R"(^\s*(\d+\.\d+\.\d+\.\d+) port (\d+) proto (\d+) id (\d+) count (\d+) local (\d+))");
  static const std::regex be(R"(^\s*(\d+):(\d+) (\d+\.\d+\.\d+\.\d+:\d+))");
  std::vector<NatFrontend> fes;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_search(line, m, fe)) {
      NatFrontend f;
      f.vip = m[1];
      f.port = std::stoi(m[2]);
      f.proto = std::stoi(m[3]);
      f.id = std::stoi(m[4]);
      f.count = std::stoi(m[5]);
      f.local = std::stoi(m[6]);
      fes.push_back(f);
    } else if (std::regex_search(line, m, be) && !fes.empty() && std::stoi(m[1]) == fes.back().id) {
      fes.back().backends.push_back(m[3]);
    }
  }
  return fes;
}

inline std::optional<NatFrontend> find_frontend(const std::vector<NatFrontend>& fes,
                                                const std::string& vip, int port, int proto) {
  for (const auto& f : fes)
    if (f.vip == vip && f.port == port && f.proto == proto) return f;
  return std::nullopt;
}

// ---------------------------------------------------------------- conntrack dump
//   TCP 10.65.0.2:38978 -> 10.96.0.10:80 -> 10.65.0.3:8080 Active ago 88ms ESTABLISHED
struct CtNatEntry {
  std::string proto;  // "TCP", "UDP"
  std::string client, vip, backend;
  std::string line;
};

inline std::vector<CtNatEntry> parse_conntrack_nat(const std::string& out) {
  static const std::regex re(R"(^\s*(\w+) (\S+) -> (\S+) -> (\S+) )");
  std::vector<CtNatEntry> v;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_search(line, m, re)) v.push_back({m[1], m[2], m[3], m[4], line});
  }
  return v;
}

// ---------------------------------------------------------------- counters dump
// The "Total | packets | INGRESS | EGRESS" row; nullopt when absent.
struct Totals {
  uint64_t ingress = 0, egress = 0;
};
inline std::optional<Totals> parse_counters_total(const std::string& out) {
  static const std::regex re(R"(\|\s*Total\s*\|\s*packets\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|)");
  std::smatch m;
  if (!std::regex_search(out, m, re)) return std::nullopt;
  return Totals{std::stoull(m[1]), std::stoull(m[2])};
}

// The last `n` lines of `text`.
inline std::string tail(const std::string& text, size_t n) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string l;
  while (std::getline(in, l)) lines.push_back(l);
  std::string out;
  for (size_t i = lines.size() > n ? lines.size() - n : 0; i < lines.size(); ++i)
    out += lines[i] + "\n";
  return out;
}

// Namespaces whose name starts with weir-<id>-.
inline std::vector<std::string> lab_namespaces(const std::string& id) {
  std::vector<std::string> v;
  for (const auto& n : lab::list_netns())
    if (n.rfind("weir-" + id + "-", 0) == 0) v.push_back(n);
  return v;
}

// Waits until `weir bpf nat dump` shows `backend` ("ip:port"): the agent programmed the
// service. False after `timeout`.
inline bool wait_for_nat_backend(const lab::Lab& lab, const std::string& backend,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  return wait_until(
      [&] {
        auto out = lab.run_weir({"bpf", "nat", "dump"});
        return out.ok() && out->find(backend) != std::string::npos;
      },
      timeout);
}

// ---------------------------------------------------------------- weir doctor
struct DoctorReport {
  int rc = -1;
  std::map<std::string, std::pair<std::string, std::string>> checks;  // name -> (level, found)
  std::string out;
  std::string level(const std::string& name) const {
    auto it = checks.find(name);
    return it == checks.end() ? "missing" : it->second.first;
  }
  std::string found(const std::string& name) const {
    auto it = checks.find(name);
    return it == checks.end() ? "" : it->second.second;
  }
};

// `weir doctor --json` on the lab's (first) node, with its agent's log. In the node's network
// namespace only (`ip netns exec` would also remount /sys, hiding the bpffs).
// `weir doctor --json` in the lab's node netns; `wrapper` (e.g. unshare ... sh -c ...) goes before it.
inline DoctorReport run_doctor(const lab::Lab& lab, const std::vector<std::string>& wrapper = {}) {
  DoctorReport d;
  std::vector<std::string> argv = wrapper;
  for (const std::string& a : {lab.weir_binary(), std::string("--pin-root"), lab.pin_root(), std::string("doctor"),
                               std::string("--json"), std::string("--agent-log"), lab.agent_log_path()})
    argv.push_back(a);
  auto r = lab::run_process(argv, lab::RunOptions::in(lab.node_netns()));
  EXPECT_TRUE(r.ok()) << r.error().str();
  if (!r.ok()) return d;
  d.rc = r->status.exited ? r->status.code : -1;
  d.out = r->out + r->err;
  auto j = nlohmann::json::parse(r->out, nullptr, false);
  EXPECT_TRUE(j.is_array()) << d.out;
  if (!j.is_array()) return d;
  for (const auto& c : j) d.checks[c["check"]] = {c["level"], c["found"]};
  return d;
}

}  // namespace weir::e2e
