#include "polprog/count_emit.h"

#include <linux/bpf.h>

#include "weir/counters.h"

namespace weir::polprog {

void emit_count_outcome(Assembler& a, const MapRef& counters, int key_off, int val_off, uint32_t counter) {
  const Label have = a.new_label("count_have");
  const Label out = a.new_label("count_out");
  auto stack_ptr = [&a](Reg r, int off) {
    a.mov(r, R10);
    a.add(r, off);
  };
  stack_ptr(R2, key_off);
  a.ld_map_fd(R1, counters);
  a.call(BPF_FUNC_map_lookup_elem);
  a.jne(R0, 0, have);
  // First packet counted on this interface and hook: insert zeroes, look up again.
  for (int i = 0; i < WEIR_CNT__MAX; i++) a.st(Size::U64, R10, val_off + 8 * i, 0);
  a.ld_map_fd(R1, counters);
  stack_ptr(R2, key_off);
  stack_ptr(R3, val_off);
  a.mov(R4, BPF_NOEXIST);
  a.call(BPF_FUNC_map_update_elem);
  a.ld_map_fd(R1, counters);
  stack_ptr(R2, key_off);
  a.call(BPF_FUNC_map_lookup_elem);
  a.jeq(R0, 0, out);
  a.bind(have);
  for (uint32_t c : {counter, static_cast<uint32_t>(WEIR_CNT_TOTAL)}) {
    a.ldx(Size::U64, R1, R0, static_cast<int>(8 * c));
    a.add(R1, 1);
    a.stx(Size::U64, R0, static_cast<int>(8 * c), R1);
  }
  a.bind(out);
}

}  // namespace weir::polprog
