#include "polprog/disasm.h"

#include <fmt/format.h>

#include <array>
#include <optional>

namespace weir::polprog {

namespace {

// Helper names in id order, from the uapi header's own list: the 6.1 header's mapper is
// "FN(unspec), FN(map_lookup_elem), ..." with the ids implied by position. (Later headers spell
// it "FN(unspec, 0, ctx) FN(...)" without commas; the size assertion catches a mismatch.)
#define WEIR_HELPER_NAME(name, ...) "bpf_" #name
constexpr std::array kHelperNames = {__BPF_FUNC_MAPPER(WEIR_HELPER_NAME)};
#undef WEIR_HELPER_NAME
static_assert(kHelperNames.size() == __BPF_FUNC_MAX_ID);

const char* alu_op_string(uint8_t operation) {
  switch (operation) {
    case 0x00:
      return "+=";
    case 0x10:
      return "-=";
    case 0x20:
      return "*=";
    case 0x30:
      return "/=";
    case 0x40:
      return "|=";
    case 0x50:
      return "&=";
    case 0x60:
      return "<<=";
    case 0x70:
      return ">>=";
    case 0x90:
      return "%=";
    case 0xa0:
      return "^=";
    case 0xb0:
      return "=";
    case 0xc0:
      return "s>>=";
    default:
      return nullptr;
  }
}

const char* jmp_op_string(uint8_t operation) {
  switch (operation) {
    case 0x10:
      return "==";
    case 0x20:
      return ">";
    case 0x30:
      return ">=";
    case 0x40:
      return "&";
    case 0x50:
      return "!=";
    case 0x60:
      return "s>";
    case 0x70:
      return "s>=";
    case 0xa0:
      return "<";
    case 0xb0:
      return "<=";
    case 0xc0:
      return "s<";
    case 0xd0:
      return "s<=";
    default:
      return nullptr;
  }
}

const char* size_string(uint8_t size) {
  switch (size) {
    case op::kSizeB:
      return "u8";
    case op::kSizeH:
      return "u16";
    case op::kSizeW:
      return "u32";
    default:
      return "u64";
  }
}

std::string unknown(const Insn& in) { return fmt::format("unknown opcode {:#04x}", in.code); }

// Where a jump goes: absolute when the index is known, else relative as the kernel prints it.
std::string target(const Insn& in, std::optional<size_t> index) {
  if (index) return fmt::format("{}", static_cast<int64_t>(*index) + in.off + 1);
  return fmt::format("pc{:+d}", in.off);
}

std::string map_text(int32_t imm, const DisasmOptions& opts, const std::string* name) {
  if (name != nullptr) return fmt::format("map[{}]", *name);
  auto it = opts.map_names.find(imm);
  if (it != opts.map_names.end()) return fmt::format("map[{}]", it->second);
  return fmt::format("map[{}:{}]", opts.map_imm_is_id ? "id" : "fd", imm);
}

// Text of `in`; `next` is the following slot when known (ld_imm64), `index` the position of
// `in` when known (absolute jump targets), `map_name` a symbolic name for a map load.
std::string text(const Insn& in, const Insn* next, std::optional<size_t> index,
                 const DisasmOptions& opts, const std::string* map_name) {
  const uint8_t cls = op::cls(in.code);
  const unsigned dst = in.dst_reg;
  const unsigned src = in.src_reg;
  switch (cls) {
    case op::kClassAlu:
    case op::kClassAlu64: {
      const char r = cls == op::kClassAlu64 ? 'r' : 'w';
      const uint8_t operation = op::operation(in.code);
      if (operation == op::kAluEnd) {
        if (cls == op::kClassAlu64) return fmt::format("r{} = bswap{} r{}", dst, in.imm, dst);
        return fmt::format("r{} = {}{} r{}", dst, op::src(in.code) == op::kToBe ? "be" : "le",
                           in.imm, dst);
      }
      if (operation == op::kAluNeg) return fmt::format("{}{} = -{}{}", r, dst, r, dst);
      const char* s = alu_op_string(operation);
      if (s == nullptr) return unknown(in);
      if (op::src(in.code) == op::kSrcX) return fmt::format("{}{} {} {}{}", r, dst, s, r, src);
      return fmt::format("{}{} {} {}", r, dst, s, in.imm);
    }
    case op::kClassLdx:
      if (op::mode(in.code) != op::kModeMem) return unknown(in);
      return fmt::format("r{} = *({} *)(r{} {:+d})", dst, size_string(op::size(in.code)), src,
                         in.off);
    case op::kClassSt:
      if (op::mode(in.code) != op::kModeMem) return unknown(in);
      return fmt::format("*({} *)(r{} {:+d}) = {}", size_string(op::size(in.code)), dst, in.off,
                         in.imm);
    case op::kClassStx:
      if (op::mode(in.code) == op::kModeMem) {
        return fmt::format("*({} *)(r{} {:+d}) = r{}", size_string(op::size(in.code)), dst, in.off,
                           src);
      }
      if (op::mode(in.code) == op::kModeAtomic) {
        // Plain atomic ops (no BPF_FETCH): add, or, and, xor.
        const char* s = nullptr;
        switch (in.imm) {
          case 0x00:
            s = "+=";
            break;
          case 0x40:
            s = "|=";
            break;
          case 0x50:
            s = "&=";
            break;
          case 0xa0:
            s = "^=";
            break;
          default:
            break;
        }
        if (s == nullptr)
          return fmt::format("atomic op {:#x} on *({} *)(r{} {:+d}) with r{}", in.imm,
                             size_string(op::size(in.code)), dst, in.off, src);
        return fmt::format("lock *({} *)(r{} {:+d}) {} r{}", size_string(op::size(in.code)), dst,
                           in.off, s, src);
      }
      return unknown(in);
    case op::kClassLd: {
      const uint8_t mode = op::mode(in.code);
      if (mode == op::kModeAbs) {
        return fmt::format("r0 = *({} *)skb[{}]", size_string(op::size(in.code)), in.imm);
      }
      if (mode == op::kModeInd) {
        return fmt::format("r0 = *({} *)skb[r{} + {}]", size_string(op::size(in.code)), src,
                           in.imm);
      }
      if (in.code != op::kLdImm64) return unknown(in);
      if (src == op::kPseudoMapFd) {
        return fmt::format("r{} = {}", dst, map_text(in.imm, opts, map_name));
      }
      if (src == op::kPseudoMapValue) {
        std::string off = next != nullptr ? fmt::format("{}", static_cast<uint32_t>(next->imm))
                                          : std::string("?");
        return fmt::format("r{} = {}[0]+{}", dst, map_text(in.imm, opts, map_name), off);
      }
      if (next == nullptr) {
        return fmt::format("r{} = {:#x} (low 32 bits of ld_imm64)", dst,
                           static_cast<uint32_t>(in.imm));
      }
      uint64_t v = (static_cast<uint64_t>(static_cast<uint32_t>(next->imm)) << 32) |
                   static_cast<uint32_t>(in.imm);
      return fmt::format("r{} = {:#x}", dst, v);
    }
    case op::kClassJmp:
    case op::kClassJmp32: {
      const uint8_t operation = op::operation(in.code);
      if (cls == op::kClassJmp) {
        if (operation == op::kJmpCall) {
          if (src == op::kPseudoCall) return fmt::format("call pc{:+d}", in.imm);
          std::string_view name = helper_name(in.imm);
          return fmt::format("call {}#{}", name.empty() ? "unknown" : name, in.imm);
        }
        if (operation == op::kJmpExit) return "exit";
        if (operation == op::kJmpJa) return "goto " + target(in, index);
      }
      const char* s = jmp_op_string(operation);
      if (s == nullptr) return unknown(in);
      const char r = cls == op::kClassJmp ? 'r' : 'w';
      if (op::src(in.code) == op::kSrcX) {
        return fmt::format("if {}{} {} {}{} goto {}", r, dst, s, r, src, target(in, index));
      }
      return fmt::format("if {}{} {} {:#x} goto {}", r, dst, s, static_cast<uint32_t>(in.imm),
                         target(in, index));
    }
    default:
      return unknown(in);
  }
}

void append_line(std::string& out, std::span<const Insn> insns, size_t i, const DisasmOptions& opts,
                 const std::string* map_name) {
  const Insn* next = i + 1 < insns.size() ? &insns[i + 1] : nullptr;
  if (opts.show_opcode) {
    fmt::format_to(std::back_inserter(out), "{:>4}: ({:02x}) {}\n", i, insns[i].code,
                   text(insns[i], next, i, opts, map_name));
  } else {
    fmt::format_to(std::back_inserter(out), "{:>4}: {}\n", i,
                   text(insns[i], next, i, opts, map_name));
  }
}

void append_comments(std::string& out, const std::vector<std::string>& comments) {
  for (const auto& c : comments) {
    // A multi-line comment gets "// " on every line.
    size_t start = 0;
    while (true) {
      size_t nl = c.find('\n', start);
      out += "// ";
      out.append(c, start, nl == std::string::npos ? std::string::npos : nl - start);
      out += '\n';
      if (nl == std::string::npos) break;
      start = nl + 1;
    }
  }
}

}  // namespace

std::string_view helper_name(int32_t id) {
  if (id <= 0 || static_cast<size_t>(id) >= kHelperNames.size()) return {};
  return kHelperNames[static_cast<size_t>(id)];
}

std::string disassemble(const Insn& insn, const DisasmOptions& opts) {
  return text(insn, nullptr, std::nullopt, opts, nullptr);
}

std::string disassemble_at(std::span<const Insn> insns, size_t index, const DisasmOptions& opts) {
  if (index >= insns.size()) return fmt::format("<no instruction {}>", index);
  const Insn* next = index + 1 < insns.size() ? &insns[index + 1] : nullptr;
  return text(insns[index], next, index, opts, nullptr);
}

std::string disassemble(std::span<const Insn> insns, const DisasmOptions& opts) {
  std::string out;
  out.reserve(insns.size() * 32);
  for (size_t i = 0; i < insns.size(); i++) {
    append_line(out, insns, i, opts, nullptr);
    if (is_ld_imm64(insns[i])) i++;  // the second slot is part of this line
  }
  return out;
}

std::string disassemble(const Program& prog, const DisasmOptions& opts) {
  std::map<size_t, const std::string*> names;
  for (const auto& r : prog.relocations) names[r.insn] = &r.map.name;

  std::string out;
  out.reserve(prog.insns.size() * 32);
  auto comment = prog.comments.begin();
  for (size_t i = 0; i < prog.insns.size(); i++) {
    // Comments up to this index (a comment recorded at a second ld_imm64 slot, which the
    // assembler never produces, prints before the next instruction printed).
    for (; comment != prog.comments.end() && comment->first <= i; ++comment) {
      append_comments(out, comment->second);
    }
    auto n = names.find(i);
    append_line(out, prog.insns, i, opts, n == names.end() ? nullptr : n->second);
    if (is_ld_imm64(prog.insns[i])) i++;
  }
  for (; comment != prog.comments.end(); ++comment) append_comments(out, comment->second);
  return out;
}

}  // namespace weir::polprog
