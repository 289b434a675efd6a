#include "bpf/bpffs.h"

#include <dirent.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include <spdlog/spdlog.h>

namespace weir::bpf {

namespace {
bool statfs_is_bpf(const std::string& path, bool& exists) {
  struct statfs st {};
  if (::statfs(path.c_str(), &st) != 0) {
    exists = false;
    return false;
  }
  exists = true;
  return static_cast<unsigned long>(st.f_type) == BPF_FS_MAGIC;
}
}  // namespace

Status ensure_bpffs(const std::string& mountpoint) {
  bool exists = false;
  if (statfs_is_bpf(mountpoint, exists)) return {};
  WEIR_TRY(mkdirs(mountpoint));
  if (::mount("bpf", mountpoint.c_str(), "bpf", 0, "mode=0700") != 0)
    return errno_error("mounting bpffs at " + mountpoint);
  if (!statfs_is_bpf(mountpoint, exists))
    return make_error("mounted bpffs at {} but statfs does not show BPF_FS_MAGIC", mountpoint);
  spdlog::info("mounted bpffs at {}", mountpoint);
  return {};
}

bool is_on_bpffs(const std::string& path) {
  std::string p = path.empty() ? "/" : path;
  for (;;) {
    bool exists = false;
    bool bpf = statfs_is_bpf(p, exists);
    if (exists) return bpf;
    auto slash = p.find_last_of('/');
    if (slash == std::string::npos || p == "/") return false;
    p = slash == 0 ? "/" : p.substr(0, slash);
  }
}

Status mkdirs(const std::string& path) {
  if (path.empty()) return make_error("mkdirs: empty path");
  std::string cur;
  size_t pos = 0;
  while (pos != std::string::npos) {
    size_t next = path.find('/', pos + 1);
    cur = path.substr(0, next);
    pos = next;
    if (cur.empty() || cur == "/") continue;
    if (::mkdir(cur.c_str(), 0700) != 0 && errno != EEXIST)
      return errno_error("creating directory " + cur);
    struct stat st {};
    if (::stat(cur.c_str(), &st) != 0) return errno_error("stat " + cur);
    if (!S_ISDIR(st.st_mode)) return Error{ENOTDIR, cur + " exists and is not a directory"};
  }
  return {};
}

namespace {
Status remove_rec(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return {};
    return errno_error("stat " + path);
  }
  if (!S_ISDIR(st.st_mode)) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return errno_error("unlinking " + path);
    return {};
  }
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) return errno_error("opening directory " + path);
  std::vector<std::string> children;
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    children.push_back(path + "/" + n);
  }
  ::closedir(d);
  for (const auto& c : children) WEIR_TRY(remove_rec(c));
  if (::rmdir(path.c_str()) != 0 && errno != ENOENT) return errno_error("removing directory " + path);
  return {};
}
}  // namespace

Status remove_tree(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  if (p.empty() || p == "/") return make_error("remove_tree: refusing to remove '{}'", path);
  return remove_rec(p);
}

std::string sanitize_pin_name(std::string name) {
  for (char& c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-';
    if (!ok) c = '_';
  }
  if (name.empty()) return std::string(1, '_');
  return name;
}

}  // namespace weir::bpf
