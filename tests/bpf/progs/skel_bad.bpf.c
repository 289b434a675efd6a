// A program the verifier must reject: it reads packet data without the bounds check.
// tests/bpf/attach_skeleton_test.cpp checks that the verifier log reaches the caller.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int weir_bad(struct __sk_buff *skb) {
  void *data = (void *)(long)skb->data;
  return *(volatile int *)data;
}

char LICENSE[] SEC("license") = "GPL";
