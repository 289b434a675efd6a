// A valid SCHED_CLS program with one hash map: tests/bpf/attach_skeleton_test.cpp configures,
// loads and pins it through bpf::Skeleton. Compiled by the build (CMakeLists.txt) into the
// skeleton header gen/test/skel_good.skel.h, so the tests need no compiler at run time.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4);
  __type(key, __u32);
  __type(value, __u64);
} weir_t_map SEC(".maps");

SEC("tc")
int weir_good(struct __sk_buff *skb) {
  __u32 k = 0;
  __u64 *v = bpf_map_lookup_elem(&weir_t_map, &k);
  return v ? 1 : 0;
}

char LICENSE[] SEC("license") = "GPL";
