#include "bpf/caps.h"

#include <linux/capability.h>

#include <array>
#include <cctype>
#include <charconv>
#include <sstream>
#include <utility>

#include "util/file.h"

namespace weir::caps {
namespace {

struct Named {
  const char* name;  // without "CAP_"
  int cap;
};

// Every capability of Debian 12's kernel headers (linux/capability.h), by the same names.
constexpr std::array<Named, 41> kCaps = {{
    {"CHOWN", CAP_CHOWN},
    {"DAC_OVERRIDE", CAP_DAC_OVERRIDE},
    {"DAC_READ_SEARCH", CAP_DAC_READ_SEARCH},
    {"FOWNER", CAP_FOWNER},
    {"FSETID", CAP_FSETID},
    {"KILL", CAP_KILL},
    {"SETGID", CAP_SETGID},
    {"SETUID", CAP_SETUID},
    {"SETPCAP", CAP_SETPCAP},
    {"LINUX_IMMUTABLE", CAP_LINUX_IMMUTABLE},
    {"NET_BIND_SERVICE", CAP_NET_BIND_SERVICE},
    {"NET_BROADCAST", CAP_NET_BROADCAST},
    {"NET_ADMIN", CAP_NET_ADMIN},
    {"NET_RAW", CAP_NET_RAW},
    {"IPC_LOCK", CAP_IPC_LOCK},
    {"IPC_OWNER", CAP_IPC_OWNER},
    {"SYS_MODULE", CAP_SYS_MODULE},
    {"SYS_RAWIO", CAP_SYS_RAWIO},
    {"SYS_CHROOT", CAP_SYS_CHROOT},
    {"SYS_PTRACE", CAP_SYS_PTRACE},
    {"SYS_PACCT", CAP_SYS_PACCT},
    {"SYS_ADMIN", CAP_SYS_ADMIN},
    {"SYS_BOOT", CAP_SYS_BOOT},
    {"SYS_NICE", CAP_SYS_NICE},
    {"SYS_RESOURCE", CAP_SYS_RESOURCE},
    {"SYS_TIME", CAP_SYS_TIME},
    {"SYS_TTY_CONFIG", CAP_SYS_TTY_CONFIG},
    {"MKNOD", CAP_MKNOD},
    {"LEASE", CAP_LEASE},
    {"AUDIT_WRITE", CAP_AUDIT_WRITE},
    {"AUDIT_CONTROL", CAP_AUDIT_CONTROL},
    {"SETFCAP", CAP_SETFCAP},
    {"MAC_OVERRIDE", CAP_MAC_OVERRIDE},
    {"MAC_ADMIN", CAP_MAC_ADMIN},
    {"SYSLOG", CAP_SYSLOG},
    {"WAKE_ALARM", CAP_WAKE_ALARM},
    {"BLOCK_SUSPEND", CAP_BLOCK_SUSPEND},
    {"AUDIT_READ", CAP_AUDIT_READ},
    {"PERFMON", CAP_PERFMON},
    {"BPF", CAP_BPF},
    {"CHECKPOINT_RESTORE", CAP_CHECKPOINT_RESTORE},
}};

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::optional<int> from_name(std::string_view n) {
  std::string u = upper(n);
  std::string_view bare = u;
  if (bare.substr(0, 4) == "CAP_") bare.remove_prefix(4);
  for (const auto& c : kCaps)
    if (bare == c.name) return c.cap;
  return std::nullopt;
}

std::string name(int cap) {
  for (const auto& c : kCaps)
    if (c.cap == cap) return std::string("CAP_") + c.name;
  return "capability " + std::to_string(cap);
}

Result<uint64_t> effective_in_status(const std::string& status_text) {
  std::istringstream in(status_text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("CapEff:", 0) != 0) continue;
    size_t b = line.find_first_not_of(" \t", 7);
    if (b == std::string::npos) break;
    uint64_t v = 0;
    const char* end = line.data() + line.size();
    auto [p, ec] = std::from_chars(line.data() + b, end, v, 16);
    if (ec != std::errc() || p != end) return make_error("CapEff '{}' is not a hexadecimal number", line.substr(b));
    return v;
  }
  return make_error("no CapEff line");
}

Result<uint64_t> effective(pid_t pid) {
  std::string path = pid == 0 ? "/proc/self/status" : "/proc/" + std::to_string(pid) + "/status";
  auto text = read_file(path);
  if (!text) return text.error();
  auto eff = effective_in_status(*text);
  if (!eff) return eff.error().wrap(path);
  return eff;
}

std::vector<std::string> missing_for_agent(uint64_t eff) {
  std::vector<std::string> out;
  const bool admin = has(eff, CAP_SYS_ADMIN);
  if (!admin && !has(eff, CAP_BPF)) out.emplace_back("CAP_BPF (or CAP_SYS_ADMIN)");
  if (!admin && !has(eff, CAP_PERFMON)) out.emplace_back("CAP_PERFMON (or CAP_SYS_ADMIN)");
  if (!has(eff, CAP_NET_ADMIN)) out.emplace_back("CAP_NET_ADMIN");
  return out;
}

}  // namespace weir::caps
