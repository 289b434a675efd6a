#include "bpf/skeleton.h"

#include <bpf/libbpf.h>

#include <cstdarg>
#include <cstring>

#include <spdlog/spdlog.h>

namespace weir::bpf {
namespace detail {

std::unique_ptr<struct bpf_object_open_opts> make_open_opts(const std::string& object_name,
                                                            std::vector<char>& log_buf) {
  (void)object_name;
  LIBBPF_OPTS(bpf_object_open_opts, o);
  o.kernel_log_buf = log_buf.data();
  o.kernel_log_size = log_buf.size();
  o.kernel_log_level = 0;  // libbpf retries a failed load with level 1 into our buffer
  return std::make_unique<struct bpf_object_open_opts>(o);
}

Status set_max_entries(struct bpf_object* obj, const std::string& map_name, uint32_t n) {
  struct bpf_map* m = bpf_object__find_map_by_name(obj, map_name.c_str());
  if (m == nullptr) return Error{ENOENT, fmt::format("BPF object has no map {}", map_name)};
  int err = bpf_map__set_max_entries(m, n);
  if (err != 0) return sys_error(err, fmt::format("setting max_entries of map {} to {}", map_name, n));
  return {};
}

Status set_pin_path(struct bpf_object* obj, const std::string& map_name, const std::string& path) {
  struct bpf_map* m = bpf_object__find_map_by_name(obj, map_name.c_str());
  if (m == nullptr) return Error{ENOENT, fmt::format("BPF object has no map {}", map_name)};
  int err = bpf_map__set_pin_path(m, path.c_str());
  if (err != 0) return sys_error(err, fmt::format("setting pin path of map {} to {}", map_name, path));
  return {};
}

std::string log_text(const std::vector<char>& log_buf) {
  size_t n = strnlen(log_buf.data(), log_buf.size());
  return std::string(log_buf.data(), n);
}

Error load_error(const std::string& object_name, int err, const std::vector<char>& log_buf) {
  std::string log = log_text(log_buf);
  std::string msg = fmt::format("loading BPF object {}", object_name);
  if (!log.empty()) {
    if (log.size() > kVerifierLogTailInError) {
      log = log.substr(log.size() - kVerifierLogTailInError);
      auto nl = log.find('\n');
      if (nl != std::string::npos) log = log.substr(nl + 1);
      log = "...\n" + log;
    }
    while (!log.empty() && log.back() == '\n') log.pop_back();
    msg += " (verifier log follows)\n" + log + "\n-- end of verifier log --";
  }
  return sys_error(err, msg);
}

}  // namespace detail

namespace {
int libbpf_to_spdlog(enum libbpf_print_level level, const char* fmt_str, va_list args) {
  char buf[2048];
  int n = vsnprintf(buf, sizeof(buf), fmt_str, args);
  std::string s(buf, n < 0 ? 0 : std::min<size_t>(static_cast<size_t>(n), sizeof(buf) - 1));
  while (!s.empty() && s.back() == '\n') s.pop_back();
  if (s.rfind("libbpf: ", 0) == 0) s.erase(0, 8);  // most of libbpf's messages carry the prefix already
  switch (level) {
    case LIBBPF_WARN: spdlog::warn("libbpf: {}", s); break;
    case LIBBPF_INFO: spdlog::debug("libbpf: {}", s); break;
    default: spdlog::trace("libbpf: {}", s); break;
  }
  return n;
}
}  // namespace

void route_libbpf_logs_to_spdlog() { libbpf_set_print(libbpf_to_spdlog); }

}  // namespace weir::bpf
