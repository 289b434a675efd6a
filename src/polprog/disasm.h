// eBPF disassembler, in the syntax of the kernel verifier log and `bpftool prog dump xlated`:
//
//      0: (b7) r0 = 2
//      1: (61) r2 = *(u32 *)(r1 +76)
//      2: (55) if r2 != 0x6 goto 5
//      3: (18) r1 = map[ipsets]
//      5: (85) call bpf_map_lookup_elem#1
//      6: (95) exit
//
// Differences from the kernel's text: jump targets are absolute instruction indices ("goto 5",
// not "goto pc+2") whenever the instruction's index is known, and map loads show a symbolic name
// when one is known. Pure: no syscalls.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>

#include "polprog/asm.h"
#include "polprog/insn.h"

namespace weir::polprog {

struct DisasmOptions {
  // Print the opcode byte after the index, "(b7)", as the verifier log and bpftool do.
  bool show_opcode = true;
  // What the imm of a map ld_imm64 (src_reg BPF_PSEUDO_MAP_FD) holds: an fd in programs we
  // built, a kernel map id in instructions read back from the kernel (xlated dump). Unnamed
  // maps print as map[fd:N] / map[id:N].
  bool map_imm_is_id = false;
  // Names for map ld_imm64 immediates (fd or id, per map_imm_is_id): printed as map[name].
  // For a Program, the names of its relocations take precedence.
  std::map<int64_t, std::string> map_names;
};

// "bpf_map_lookup_elem" for helper id 1; empty for ids this build does not know.
std::string_view helper_name(int32_t id);

// One instruction on its own (no index, no opcode byte): jump targets print relative
// ("goto pc+3"); for the first slot of a ld_imm64 only the low 32 bits are known.
std::string disassemble(const Insn& insn, const DisasmOptions& opts = {});

// Instruction `index` of `insns` (no index, no opcode byte): jump targets absolute, ld_imm64 as
// one 64-bit value. An index past the end yields "<no instruction N>".
std::string disassemble_at(std::span<const Insn> insns, size_t index,
                           const DisasmOptions& opts = {});

// A listing, one line per instruction ("%4d: (op) text"), ld_imm64 on one line.
std::string disassemble(std::span<const Insn> insns, const DisasmOptions& opts = {});

// A listing of an assembled program: its comments interleaved as "// text" lines before the
// instruction they precede (and after the last one), its map loads named after their MapRef.
std::string disassemble(const Program& prog, const DisasmOptions& opts = {});

}  // namespace weir::polprog
