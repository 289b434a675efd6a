#include "bpf/tracefs.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>

#include "bpf/bpffs.h"
#include "util/fd.h"
#include "util/file.h"

namespace weir::bpf {
namespace {

constexpr long kTracefsMagic = 0x74726163;  // TRACEFS_MAGIC (linux/magic.h)
constexpr const char* kTracefs = "/sys/kernel/tracing";
constexpr const char* kDebugfsTracing = "/sys/kernel/debug/tracing";

bool is_tracefs(const std::string& dir) {
  struct statfs st {};
  return ::statfs(dir.c_str(), &st) == 0 && st.f_type == kTracefsMagic;
}

}  // namespace

Result<std::string> tracefs_dir(bool mount_if_missing) {
  if (is_tracefs(kTracefs)) return std::string(kTracefs);
  if (is_tracefs(kDebugfsTracing)) return std::string(kDebugfsTracing);
  if (!mount_if_missing) {
    return Error{ENOENT, fmt::format("tracefs is not mounted (neither {} nor {}): mount it with `mount -t tracefs "
                                     "tracefs {}`",
                                     kTracefs, kDebugfsTracing, kTracefs)};
  }
  WEIR_TRY(mkdirs(kTracefs));
  if (::mount("tracefs", kTracefs, "tracefs", 0, nullptr) != 0)
    return errno_error(std::string("mounting tracefs on ") + kTracefs);
  spdlog::info("mounted tracefs on {} (the kernel trace buffer was not reachable)", kTracefs);
  return std::string(kTracefs);
}

Result<std::string> read_trace() {
  auto dir = tracefs_dir();
  if (!dir) return dir.error();
  return read_file(*dir + "/trace");
}

Status follow_trace(const std::function<bool(const std::string&)>& line) {
  auto dir = tracefs_dir();
  if (!dir) return dir.error();
  const std::string path = *dir + "/trace_pipe";
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_error("opening " + path);
  std::string pending;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("reading " + path);
    }
    if (n == 0) return {};
    pending.append(buf, static_cast<size_t>(n));
    size_t start = 0;
    for (size_t nl = pending.find('\n'); nl != std::string::npos; nl = pending.find('\n', start)) {
      if (!line(pending.substr(start, nl - start))) return {};
      start = nl + 1;
    }
    pending.erase(0, start);
  }
}

}  // namespace weir::bpf
