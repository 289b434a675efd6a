// The running kernel's version from uname(2), for tests whose expectation depends on the
// kernel (tcx exists from 6.6; BPF_PROG_TEST_RUN's frame checks differ between releases). The
// expectation comes from the version, never from weir's own feature probe, so that a broken
// probe still fails the tests that check it.
#pragma once

#include <sys/utsname.h>

#include <cstdio>
#include <optional>
#include <string>
#include <tuple>

namespace weir::test {

struct KernelVersion {
  int major = 0, minor = 0, patch = 0;
  std::string release;  // uname -r, e.g. "6.1.0-57-cloud-amd64", "6.18.44-fc-v1252"

  // "MAJOR.MINOR[.PATCH][anything]" -> version; nullopt when the release does not start so.
  static std::optional<KernelVersion> parse(const std::string& release) {
    KernelVersion v;
    v.release = release;
    int n = std::sscanf(release.c_str(), "%d.%d.%d", &v.major, &v.minor, &v.patch);
    if (n < 2) return std::nullopt;
    if (n == 2) v.patch = 0;
    return v;
  }
  // The running kernel (nullopt when uname fails or its release is not MAJOR.MINOR...).
  static std::optional<KernelVersion> running() {
    struct utsname u {};
    if (::uname(&u) != 0) return std::nullopt;
    return parse(u.release);
  }
  bool at_least(int maj, int min) const { return std::tie(major, minor) >= std::tie(maj, min); }

  // tcx (BPF_TCX_INGRESS/EGRESS links) was merged in 6.6.
  bool has_tcx() const { return at_least(6, 6); }
};

}  // namespace weir::test
