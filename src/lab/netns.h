// Running code inside a named network namespace. Network namespaces are per thread
// (setns(CLONE_NEWNET) changes only the calling thread), so in_netns() runs the function in a
// fresh thread that joins /run/netns/<name> first: sockets it opens live in that namespace,
// and the caller's thread is never moved.
#pragma once

#include <sched.h>

#include <exception>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "lab/process.h"
#include "util/result.h"

namespace weir::lab {

namespace detail {
template <typename T>
struct is_result : std::false_type {};
template <typename T>
struct is_result<Result<T>> : std::true_type {};

// What in_netns returns for a function returning R: R itself when R is a Result/Status (the
// setns error is folded into it), Status for void, Result<R> otherwise.
template <typename R>
struct netns_result {
  using type = Result<R>;
};
template <>
struct netns_result<void> {
  using type = Status;
};
template <typename T>
struct netns_result<Result<T>> {
  using type = Result<T>;
};
}  // namespace detail

template <typename F>
using netns_result_t = typename detail::netns_result<std::invoke_result_t<F&>>::type;

// Runs f() in a thread that has joined the network namespace /run/netns/<netns> and waits for
// it. Exceptions thrown by f are rethrown in the caller. Errors: the namespace cannot be
// opened or joined (named in the message).
template <typename F>
netns_result_t<F> in_netns(const std::string& netns, F&& f) {
  using R = std::invoke_result_t<F&>;
  using Out = netns_result_t<F>;
  auto fd = open_netns(netns);
  if (!fd) return Out(fd.error());
  std::optional<Out> out;
  std::exception_ptr ex;
  std::thread t([&] {
    if (::setns(fd->get(), CLONE_NEWNET) != 0) {
      out.emplace(errno_error("setns into network namespace " + netns));
      return;
    }
    try {
      if constexpr (std::is_void_v<R>) {
        f();
        out.emplace();
      } else {
        out.emplace(f());
      }
    } catch (...) {
      ex = std::current_exception();
    }
  });
  t.join();
  if (ex) std::rethrow_exception(ex);
  return std::move(*out);
}

// True when /run/netns/<name> exists.
bool netns_exists(const std::string& name);

// Names under /run/netns (the `ip netns list` set), sorted.
std::vector<std::string> list_netns();

// Writes `value` to /proc/sys/<key with '.' -> '/'> from inside `netns`, e.g.
// set_sysctl("weir-1-node", "net.ipv4.ip_forward", "1"). Interface names in the key are
// written as they are (use set_sysctl_path for names containing dots).
Status set_sysctl(const std::string& netns, const std::string& key, const std::string& value);
// Same with an explicit path below /proc/sys, e.g. "net/ipv4/conf/weirabcp1/proxy_arp".
Status set_sysctl_path(const std::string& netns, const std::string& path, const std::string& value);

}  // namespace weir::lab
