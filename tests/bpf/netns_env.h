// The network namespace weir_bpf_tests runs in: entered once, before any test, by a gtest
// global environment (netns_env.cpp). BPF_PROG_TEST_RUN only accepts an __sk_buff.ifindex that
// exists in the caller's namespace, so the tests create their own veth pairs there; nothing in
// the namespace the binary was started in is touched, and everything disappears with the process.
#pragma once

#include <cstdint>
#include <string>

namespace weir::test {

struct TestTopology {
  bool ready = false;
  std::string error;      // why the namespace or the veths could not be set up
  uint32_t client_if = 0; // host-side veth of the client pod
  uint32_t be1_if = 0;    // host-side veth of backend pod 1
  uint32_t be2_if = 0;    // host-side veth of backend pod 2
};

// The topology built by the environment (ready == false until it ran, or when it failed).
const TestTopology& topology();

}  // namespace weir::test
