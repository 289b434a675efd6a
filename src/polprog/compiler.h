// The rule compiler: one calc::pol::EndpointPolicy (one endpoint, one direction) -> eBPF
// programs that implement it, following the contract of bpf/include/weir/policy.h.
//
//   CompileOptions opts;
//   opts.slot_of_chunk = [&](size_t i) { return allocator.take(); };  // chunks 1..N-1
//   Result<CompiledPolicy> c = compile(policy, opts);
//   Result<LoadedPolicy> l = load(*c, fds, "weir_pol_eth0_i");      // verifier, per chunk
//   install(*l, fds.jump)  -> every chunk except the entry written into its jump slot; the caller
//                            then writes the entry (chunk 0) into a slot and points the
//                            endpoint's ifstate at it (one atomic flip), see dataplane/policy_*.
//
// Generated code reads the inputs of weir_pol_state (weir_pstate1[0]), looks IP sets up in
// weir_ipsetx1 (exact members) and then weir_ipsets1 (CIDRs, full key), bumps
// weir_rule_cnt1[rule.id] for the deciding rule and every Log rule it passes, writes verdict and
// rule_id, and tail-calls the continuation of its direction (Egress -> WEIR_JUMP_FROM_WL_POLICY_DONE, Ingress -> WEIR_JUMP_TO_WL_POLICY_DONE).
// If that tail call fails it counts WEIR_CNT_DROP_TAIL_CALL (+ TOTAL) in weir_counters3 for
// (state.ifindex, state.hook) and returns TC_ACT_SHOT.
//
// Large policies are split into chunks of at most max_insns_per_chunk instructions at rule
// boundaries; a chunk that ends without a verdict tail-calls the next chunk (state.resume says
// where to resume). Pure: no syscalls except in load()/install().
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "calc/policy_ir.h"
#include "polprog/asm.h"
#include "util/fd.h"
#include "util/result.h"

namespace weir::polprog {

// Names of the symbolic maps the generated programs use (MapRef names).
inline constexpr const char* kMapState = "pstate";
inline constexpr const char* kMapIpsets = "ipsets";
inline constexpr const char* kMapIpsetExact = "ipset_x";
inline constexpr const char* kMapRuleCnt = "rule_cnt";
inline constexpr const char* kMapJump = "jump";
inline constexpr const char* kMapCounters = "counters";
inline constexpr const char* kMapTraceJump = "trjmp";  // only with CompileOptions::trace

// The most chunks a policy may take (the kernel allows 33 tail calls in a chain: main program ->
// chunk 0 -> ... -> chunk 29 -> continuation).
inline constexpr size_t kMaxPolicyChunks = 30;
// Chunks never exceed this many instructions, whatever max_insns_per_chunk says: every jump
// inside a chunk must fit the 16-bit offset (no cpu-v4 long jumps on kernel 6.1).
inline constexpr size_t kMaxChunkInsns = 32767;

struct CompileOptions {
  // Jump slot of chunk i (i >= 1), called once per extra chunk in increasing i. Required when
  // the policy needs more than one chunk.
  std::function<uint32_t(size_t chunk)> slot_of_chunk;
  // Upper bound on instructions per chunk (the verifier accepts up to 1M processed insns; the
  // chain of tail calls is limited to 33 in all, so the compiler refuses more than 30 chunks).
  // 0 = automatic: chunks of kAutoChunkInsns, larger only when the policy would otherwise need
  // more than kAutoMaxChunks chunks. The verifier's load time grows faster than linearly with a
  // program's length (each inlined map lookup patches the whole program), so several small
  // chunks load much faster than one large one: 1,000 rules in 5 chunks of ~4k instructions
  // load in ~50 ms, in one chunk of 18k in ~140 ms (bench/README.md).
  size_t max_insns_per_chunk = 0;
  // The trace capability (`weir bpf trace`, docs/bpf-trace.md): for a packet of the trace build
  // (WEIR_PSTATE_F_TRACE) no rule is counted and the continuation is weir_trjmp1's. The program
  // then uses that map (PolicyMapFds::trace_jump).
  bool trace = false;
};

inline constexpr size_t kAutoChunkInsns = 4096;
inline constexpr size_t kAutoMaxChunks = 26;  // leaves room under kMaxPolicyChunks for tier stubs

struct CompiledPolicy {
  calc::pol::Direction direction = calc::pol::Direction::Ingress;
  std::vector<Program> chunks;          // chunks[0] is the entry point
  std::vector<uint32_t> chunk_slots;    // chunk_slots[i] for i >= 1; chunk_slots[0] unused (0)
  size_t rule_count = 0;
};

Result<CompiledPolicy> compile(const calc::pol::EndpointPolicy& policy, const CompileOptions& opts);

// File descriptors of the maps a generated program references.
struct PolicyMapFds {
  int state = -1;     // weir_pstate1
  int ipsets = -1;    // weir_ipsets1
  int rule_cnt = -1;  // weir_rule_cnt1
  int jump = -1;      // weir_jump1
  int counters = -1;  // weir_counters3
  int ipset_exact = -1;  // weir_ipsetx1 (last: keeps positional initialisers of the others valid)
  int trace_jump = -1;   // weir_trjmp1: required by programs compiled with CompileOptions::trace
};

struct LoadedPolicy {
  std::vector<Fd> chunks;             // program fds, same order as CompiledPolicy::chunks
  std::vector<uint32_t> chunk_slots;  // as in CompiledPolicy
};

// The kernel name of chunk `chunk` of a program named by `pattern` (BPF object names hold at
// most 15 characters). A pattern with "{}" gets the chunk index there, and what follows it is the
// distinguishing tail: when the whole does not fit, the tail keeps its end and its first kept
// character becomes '.' ("wi{}_cali1234567890a" -> "wi0.1234567890a"), so that two
// interfaces that differ at their end keep different names. Without "{}", the index is appended
// to the pattern cut to fit.
std::string chunk_program_name(const std::string& pattern, size_t chunk);

// Relocates and loads every chunk as BPF_PROG_TYPE_SCHED_CLS, named chunk_program_name(
// name_pattern, index). An error carries the verifier's log tail and the chunk's disassembly.
Result<LoadedPolicy> load(const CompiledPolicy& compiled, const PolicyMapFds& fds,
                          const std::string& name_pattern);

// Loads one relocated program as BPF_PROG_TYPE_SCHED_CLS under the kernel name `name`. An error
// reads "loading <what> <name> (<n> instructions): verifier log: ..." with the log's tail and
// the disassembly (`weir doctor` looks for it in the agent's log).
Result<Fd> load_sched_cls(const Program& prog, const std::string& name, const std::string& what);

// Writes chunks 1..N-1 into their jump slots (highest first). Chunk 0 is left to the caller.
Status install_chunks(const LoadedPolicy& loaded, int jump_fd);

// The comment lines of every chunk in order ("// Start of tier default", "// Start of rule ...",
// "// End of rule <id>", ...), one per line, without instructions or chunk markers: what
// `weir bpf policy dump` prints without --asm (it adds the counts).
std::string describe(const CompiledPolicy& compiled);

// The disassembly of every chunk, with the compiler's comments (`// Start of rule ...`), for
// `weir bpf policy dump --asm`.
std::string disassemble(const CompiledPolicy& compiled);

}  // namespace weir::polprog
