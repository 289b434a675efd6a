#include "lab/netns.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

namespace weir::lab {

bool netns_exists(const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos) return false;
  struct stat sb {};
  return ::stat(("/run/netns/" + name).c_str(), &sb) == 0;
}

std::vector<std::string> list_netns() {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/run/netns", ec))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

Status set_sysctl_path(const std::string& netns, const std::string& path,
                       const std::string& value) {
  std::string full = "/proc/sys/" + path;
  return in_netns(netns, [&]() -> Status {
    Fd fd(::open(full.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd) return errno_error(fmt::format("[netns {}] opening {}", netns, full));
    std::string v = value + "\n";
    if (::write(fd.get(), v.data(), v.size()) != static_cast<ssize_t>(v.size()))
      return errno_error(fmt::format("[netns {}] writing '{}' to {}", netns, value, full));
    return {};
  });
}

Status set_sysctl(const std::string& netns, const std::string& key, const std::string& value) {
  std::string path = key;
  std::replace(path.begin(), path.end(), '.', '/');
  return set_sysctl_path(netns, path, value);
}

}  // namespace weir::lab
