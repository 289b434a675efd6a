#include "polprog/asm.h"

#include <fmt/format.h>

#include <limits>
#include <utility>

namespace weir::polprog {

namespace {

constexpr size_t kMaxReportedErrors = 20;

uint8_t size_bits(Size s) {
  switch (s) {
    case Size::U8:
      return op::kSizeB;
    case Size::U16:
      return op::kSizeH;
    case Size::U32:
      return op::kSizeW;
    case Size::U64:
      return op::kSizeDW;
  }
  return op::kSizeDW;
}

const char* alu_name(AluOp o) {
  switch (o) {
    case AluOp::Add:
      return "add";
    case AluOp::Sub:
      return "sub";
    case AluOp::Mul:
      return "mul";
    case AluOp::Div:
      return "div";
    case AluOp::Or:
      return "or";
    case AluOp::And:
      return "and";
    case AluOp::Lsh:
      return "lsh";
    case AluOp::Rsh:
      return "rsh";
    case AluOp::Mod:
      return "mod";
    case AluOp::Xor:
      return "xor";
    case AluOp::Mov:
      return "mov";
    case AluOp::Arsh:
      return "arsh";
  }
  return "?";
}

bool valid_alu_op(AluOp o) {
  switch (o) {
    case AluOp::Add:
    case AluOp::Sub:
    case AluOp::Mul:
    case AluOp::Div:
    case AluOp::Or:
    case AluOp::And:
    case AluOp::Lsh:
    case AluOp::Rsh:
    case AluOp::Mod:
    case AluOp::Xor:
    case AluOp::Mov:
    case AluOp::Arsh:
      return true;
  }
  return false;
}

bool valid_cond(Cond c) {
  switch (c) {
    case Cond::Eq:
    case Cond::Gt:
    case Cond::Ge:
    case Cond::Set:
    case Cond::Ne:
    case Cond::SGt:
    case Cond::SGe:
    case Cond::Lt:
    case Cond::Le:
    case Cond::SLt:
    case Cond::SLe:
      return true;
  }
  return false;
}

bool is_shift(AluOp o) { return o == AluOp::Lsh || o == AluOp::Rsh || o == AluOp::Arsh; }

}  // namespace

std::optional<Cond> invert(Cond c) {
  switch (c) {
    case Cond::Eq:
      return Cond::Ne;
    case Cond::Ne:
      return Cond::Eq;
    case Cond::Gt:
      return Cond::Le;
    case Cond::Le:
      return Cond::Gt;
    case Cond::Ge:
      return Cond::Lt;
    case Cond::Lt:
      return Cond::Ge;
    case Cond::SGt:
      return Cond::SLe;
    case Cond::SLe:
      return Cond::SGt;
    case Cond::SGe:
      return Cond::SLt;
    case Cond::SLt:
      return Cond::SGe;
    case Cond::Set:
      return std::nullopt;
  }
  return std::nullopt;
}

Assembler::Assembler(std::string name) : name_(std::move(name)) {}

// ---------------------------------------------------------------- errors and checks

void Assembler::error(std::string msg) { errors_.push_back(std::move(msg)); }

std::string Assembler::label_name(uint32_t id) const {
  if (id >= labels_.size()) return fmt::format("<unknown label #{}>", id);
  return "'" + labels_[id].name + "'";
}

bool Assembler::check_reg(Reg r, const char* what) {
  if (static_cast<uint8_t>(r) < kNumRegs) return true;
  error(fmt::format("insn {} ({}): invalid register r{} (r0..r10 exist)", pos(), what,
                    static_cast<unsigned>(r)));
  return false;
}

int16_t Assembler::check_off(int off, const char* what) {
  if (off < std::numeric_limits<int16_t>::min() || off > std::numeric_limits<int16_t>::max()) {
    error(fmt::format("insn {} ({}): memory offset {} outside the s16 range [-32768, 32767]", pos(),
                      what, off));
    return 0;
  }
  return static_cast<int16_t>(off);
}

// ---------------------------------------------------------------- labels and comments

Label Assembler::new_label(std::string name) {
  auto id = static_cast<uint32_t>(labels_.size());
  if (name.empty()) name = fmt::format("L{}", id);
  labels_.push_back(LabelInfo{std::move(name), SIZE_MAX});
  return Label(id);
}

void Assembler::bind(Label label) {
  if (!label.valid()) {
    error(fmt::format("insn {}: bind() of a default-constructed Label (use new_label())", pos()));
    return;
  }
  if (label.id_ >= labels_.size()) {
    error(fmt::format("insn {}: bind() of a label this assembler did not create (#{})", pos(),
                      label.id_));
    return;
  }
  auto& info = labels_[label.id_];
  if (info.pos != SIZE_MAX) {
    error(fmt::format("insn {}: label '{}' bound twice (first at insn {})", pos(), info.name,
                      info.pos));
    return;
  }
  info.pos = pos();
}

bool Assembler::is_bound(Label label) const {
  return label.valid() && label.id_ < labels_.size() && labels_[label.id_].pos != SIZE_MAX;
}

void Assembler::comment(std::string text) { comments_[pos()].push_back(std::move(text)); }

// ---------------------------------------------------------------- ALU

void Assembler::alu64(AluOp o, Reg dst, Reg src) {
  if (!valid_alu_op(o)) {
    error(fmt::format("insn {}: invalid ALU operation 0x{:02x}", pos(), uint8_t(o)));
    return;
  }
  check_reg(dst, alu_name(o));
  check_reg(src, alu_name(o));
  emit(make_insn(op::kClassAlu64 | op::kSrcX | uint8_t(o), dst, src, 0, 0));
}

void Assembler::alu64(AluOp o, Reg dst, Imm imm) {
  if (!valid_alu_op(o)) {
    error(fmt::format("insn {}: invalid ALU operation 0x{:02x}", pos(), uint8_t(o)));
    return;
  }
  check_reg(dst, alu_name(o));
  if (is_shift(o) && (imm.value() < 0 || imm.value() > 63)) {
    error(fmt::format("insn {} ({}): 64-bit shift by {} (must be 0..63)", pos(), alu_name(o),
                      imm.value()));
  }
  if ((o == AluOp::Div || o == AluOp::Mod) && imm.value() == 0) {
    error(fmt::format("insn {} ({}): division by immediate 0", pos(), alu_name(o)));
  }
  emit(make_insn(op::kClassAlu64 | op::kSrcK | uint8_t(o), dst, R0, 0, imm.value()));
}

void Assembler::alu32(AluOp o, Reg dst, Reg src) {
  if (!valid_alu_op(o)) {
    error(fmt::format("insn {}: invalid ALU operation 0x{:02x}", pos(), uint8_t(o)));
    return;
  }
  check_reg(dst, alu_name(o));
  check_reg(src, alu_name(o));
  emit(make_insn(op::kClassAlu | op::kSrcX | uint8_t(o), dst, src, 0, 0));
}

void Assembler::alu32(AluOp o, Reg dst, Imm32 imm) {
  if (!valid_alu_op(o)) {
    error(fmt::format("insn {}: invalid ALU operation 0x{:02x}", pos(), uint8_t(o)));
    return;
  }
  check_reg(dst, alu_name(o));
  if (is_shift(o) && (imm.value() < 0 || imm.value() > 31)) {
    error(fmt::format("insn {} ({}32): 32-bit shift by {} (must be 0..31)", pos(), alu_name(o),
                      imm.value()));
  }
  if ((o == AluOp::Div || o == AluOp::Mod) && imm.bits() == 0) {
    error(fmt::format("insn {} ({}32): division by immediate 0", pos(), alu_name(o)));
  }
  emit(make_insn(op::kClassAlu | op::kSrcK | uint8_t(o), dst, R0, 0, imm.bits()));
}

void Assembler::neg(Reg dst) {
  check_reg(dst, "neg");
  emit(make_insn(op::kClassAlu64 | op::kSrcK | op::kAluNeg, dst, R0, 0, 0));
}

void Assembler::neg32(Reg dst) {
  check_reg(dst, "neg32");
  emit(make_insn(op::kClassAlu | op::kSrcK | op::kAluNeg, dst, R0, 0, 0));
}

void Assembler::endian(uint8_t order, Reg dst, int bits) {
  check_reg(dst, order == op::kToBe ? "be" : "le");
  emit(make_insn(op::kClassAlu | order | op::kAluEnd, dst, R0, 0, bits));
}

// ---------------------------------------------------------------- memory

void Assembler::ldx(Size size, Reg dst, Reg src, int off) {
  check_reg(dst, "ldx");
  check_reg(src, "ldx");
  int16_t o = check_off(off, "ldx");
  emit(make_insn(op::kClassLdx | op::kModeMem | size_bits(size), dst, src, o, 0));
}

void Assembler::stx(Size size, Reg dst, int off, Reg src) {
  check_reg(dst, "stx");
  check_reg(src, "stx");
  int16_t o = check_off(off, "stx");
  emit(make_insn(op::kClassStx | op::kModeMem | size_bits(size), dst, src, o, 0));
}

void Assembler::st(Size size, Reg dst, int off, Imm32 imm) {
  check_reg(dst, "st");
  int16_t o = check_off(off, "st");
  if (size == Size::U64 && (imm.value() < std::numeric_limits<int32_t>::min() ||
                            imm.value() > std::numeric_limits<int32_t>::max())) {
    error(fmt::format(
        "insn {} (st u64): immediate {:#x} would be sign-extended to {:#x}; use ld_imm64 + stx",
        pos(), imm.value(), static_cast<uint64_t>(static_cast<int64_t>(imm.bits()))));
  }
  emit(make_insn(op::kClassSt | op::kModeMem | size_bits(size), dst, R0, o, imm.bits()));
}

void Assembler::atomic_add(Size size, Reg dst, int off, Reg src) {
  check_reg(dst, "atomic_add");
  check_reg(src, "atomic_add");
  int16_t o = check_off(off, "atomic_add");
  if (size != Size::U32 && size != Size::U64) {
    error(fmt::format("insn {} (atomic_add): size must be u32 or u64", pos()));
  }
  emit(make_insn(op::kClassStx | op::kModeAtomic | size_bits(size), dst, src, o,
                 uint8_t(AluOp::Add)));
}

void Assembler::ld_imm64(Reg dst, uint64_t imm) {
  check_reg(dst, "ld_imm64");
  emit(make_insn(op::kLdImm64, dst, R0, 0, static_cast<int32_t>(static_cast<uint32_t>(imm))));
  emit(make_insn(0, R0, R0, 0, static_cast<int32_t>(static_cast<uint32_t>(imm >> 32))));
}

void Assembler::ld_map_fd(Reg dst, MapRef map) {
  check_reg(dst, "ld_map_fd");
  if (map.name.empty()) error(fmt::format("insn {} (ld_map_fd): MapRef with an empty name", pos()));
  relocations_.push_back(MapRelocation{pos(), std::move(map), -1});
  emit(make_insn(op::kLdImm64, dst, static_cast<Reg>(op::kPseudoMapFd), 0, 0));
  emit(make_insn(0, R0, R0, 0, 0));
}

// ---------------------------------------------------------------- control flow

void Assembler::call(bpf_func_id helper) {
  emit(make_insn(op::kClassJmp | op::kJmpCall, R0, R0, 0, static_cast<int32_t>(helper)));
}

void Assembler::exit() { emit(make_insn(op::kClassJmp | op::kJmpExit, R0, R0, 0, 0)); }

void Assembler::jump(uint8_t code, Reg dst, Reg src, int32_t imm, Label target) {
  if (!target.valid()) {
    error(fmt::format("insn {}: jump to a default-constructed Label (use new_label())", pos()));
  } else if (target.id_ >= labels_.size()) {
    error(fmt::format("insn {}: jump to a label this assembler did not create (#{})", pos(),
                      target.id_));
  } else {
    fixups_.push_back(Fixup{pos(), target.id_});
  }
  emit(make_insn(code, dst, src, 0, imm));
}

void Assembler::ja(Label target) { jump(op::kClassJmp | op::kJmpJa, R0, R0, 0, target); }

void Assembler::jmp(Cond c, Reg dst, Imm imm, Label target) {
  if (!valid_cond(c))
    error(fmt::format("insn {}: invalid jump condition 0x{:02x}", pos(), uint8_t(c)));
  check_reg(dst, "jmp");
  jump(op::kClassJmp | op::kSrcK | uint8_t(c), dst, R0, imm.value(), target);
}

void Assembler::jmp(Cond c, Reg dst, Reg src, Label target) {
  if (!valid_cond(c))
    error(fmt::format("insn {}: invalid jump condition 0x{:02x}", pos(), uint8_t(c)));
  check_reg(dst, "jmp");
  check_reg(src, "jmp");
  jump(op::kClassJmp | op::kSrcX | uint8_t(c), dst, src, 0, target);
}

void Assembler::jmp32(Cond c, Reg dst, Imm32 imm, Label target) {
  if (!valid_cond(c))
    error(fmt::format("insn {}: invalid jump condition 0x{:02x}", pos(), uint8_t(c)));
  check_reg(dst, "jmp32");
  jump(op::kClassJmp32 | op::kSrcK | uint8_t(c), dst, R0, imm.bits(), target);
}

void Assembler::jmp32(Cond c, Reg dst, Reg src, Label target) {
  if (!valid_cond(c))
    error(fmt::format("insn {}: invalid jump condition 0x{:02x}", pos(), uint8_t(c)));
  check_reg(dst, "jmp32");
  check_reg(src, "jmp32");
  jump(op::kClassJmp32 | op::kSrcX | uint8_t(c), dst, src, 0, target);
}

// ---------------------------------------------------------------- output

Result<Program> Assembler::assemble() const {
  std::vector<std::string> errors = errors_;
  if (insns_.empty()) errors.emplace_back("empty program (no instructions)");

  Program prog;
  prog.insns = insns_;
  for (const auto& f : fixups_) {
    const LabelInfo& l = labels_[f.label];
    if (l.pos == SIZE_MAX) {
      errors.push_back(
          fmt::format("insn {}: jump to label '{}' which was never bound", f.insn, l.name));
      continue;
    }
    if (l.pos >= insns_.size()) {
      errors.push_back(
          fmt::format("insn {}: jump to label '{}' bound at insn {}, after the last instruction",
                      f.insn, l.name, l.pos));
      continue;
    }
    // Jump offsets are relative to the instruction after the jump.
    auto off = static_cast<int64_t>(l.pos) - static_cast<int64_t>(f.insn) - 1;
    if (off < std::numeric_limits<int16_t>::min() || off > std::numeric_limits<int16_t>::max()) {
      errors.push_back(
          fmt::format("insn {}: jump to label '{}' at insn {}: offset {} outside the s16 range "
                      "[-32768, 32767]",
                      f.insn, l.name, l.pos, off));
      continue;
    }
    prog.insns[f.insn].off = static_cast<int16_t>(off);
  }

  if (!errors.empty()) {
    std::string msg = fmt::format("assembling {}: {} error{}", name_, errors.size(),
                                  errors.size() == 1 ? "" : "s");
    for (size_t i = 0; i < errors.size() && i < kMaxReportedErrors; i++) msg += "; " + errors[i];
    if (errors.size() > kMaxReportedErrors) {
      msg += fmt::format("; ... and {} more", errors.size() - kMaxReportedErrors);
    }
    return Error{0, std::move(msg)};
  }
  prog.comments = comments_;
  prog.relocations = relocations_;
  return prog;
}

// ---------------------------------------------------------------- relocation

Status relocate(Program& prog, const std::map<MapRef, int>& fds) {
  std::vector<std::string> errors;
  for (const auto& r : prog.relocations) {
    if (r.insn + 1 >= prog.insns.size() || !is_ld_imm64(prog.insns[r.insn]) ||
        prog.insns[r.insn].src_reg != op::kPseudoMapFd) {
      errors.push_back(
          fmt::format("relocation of map '{}' points at insn {}, which is not a "
                      "map ld_imm64",
                      r.map.name, r.insn));
      continue;
    }
    auto it = fds.find(r.map);
    if (it == fds.end()) {
      errors.push_back(fmt::format("map '{}' (ld_imm64 at insn {}) has no fd to relocate to",
                                   r.map.name, r.insn));
    } else if (it->second < 0) {
      errors.push_back(fmt::format("map '{}' (ld_imm64 at insn {}): invalid fd {}", r.map.name,
                                   r.insn, it->second));
    }
  }
  if (!errors.empty()) {
    std::string msg = "relocating map fds";
    for (const auto& e : errors) msg += "; " + e;
    return Error{0, std::move(msg)};
  }
  for (auto& r : prog.relocations) {
    int fd = fds.at(r.map);
    prog.insns[r.insn].imm = fd;
    prog.insns[r.insn + 1].imm = 0;
    r.fd = fd;
  }
  return {};
}

Status check_relocated(const Program& prog) {
  for (const auto& r : prog.relocations) {
    if (r.fd < 0) {
      return make_error("map '{}' (ld_imm64 at insn {}) not relocated: call relocate() with its fd",
                        r.map.name, r.insn);
    }
  }
  return {};
}

}  // namespace weir::polprog
