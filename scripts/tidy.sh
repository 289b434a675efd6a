#!/usr/bin/env bash
# Runs clang-tidy (Debian 12's clang-tidy 14, the checks of .clang-tidy) over weir's own C++
# sources (src/, its .cpp files and the headers they include; not tests/ by default: their 58
# files of gtest would double the cost; not bench/, the generated skeletons or third-party code)
# with the compile commands of a configured build directory (default ./build-asan, the test
# command's; CMakeLists.txt exports compile_commands.json). Fails on any warning (.clang-tidy:
# WarningsAsErrors '*').
# Usage: [WEIR_TIDY_CHECKS=check,...] scripts/tidy.sh [build dir] [file regex]
#        (e.g. scripts/tidy.sh build-asan 'tests/unit/.*')
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-asan}
regex=${2:-"src/.*\\.cpp"}
if [[ ! -f $build/compile_commands.json ]]; then
  echo "scripts/tidy.sh: $build/compile_commands.json missing: configure first (scripts/build.sh --sanitize)" >&2
  exit 1
fi
# The generated skeletons (<build>/gen/*.skel.h) must exist: src/bpf includes them. (Built only
# when missing: scripts/test.sh runs this while it builds the same directory.)
if ! compgen -G "$build/gen/*.skel.h" >/dev/null; then
  cmake --build "$build" --target weir_bpf_skeletons >/dev/null
fi
log=$build/tidy.log
# The build's commands without its precompiled header (CMakeLists.txt): given the PCH,
# clang-tidy's matchers walk every declaration of every header in it, in every file.
db=$build/tidy-db
mkdir -p "$db"
python3 - "$build/compile_commands.json" "$db/compile_commands.json" <<'PY'
import json, re, sys
cmds = json.load(open(sys.argv[1]))
pch = re.compile(r' -Winvalid-pch| -Xclang -include-pch -Xclang \S+| -Xclang -include -Xclang \S+cmake_pch\.hxx')
for c in cmds:
    c['command'] = pch.sub('', c['command'])
json.dump(cmds, open(sys.argv[2], 'w'))
PY
status=0
# WEIR_TIDY_CHECKS: checks added to .clang-tidy's (e.g. the ones it leaves out for time).
extra=()
[[ -n ${WEIR_TIDY_CHECKS:-} ]] && extra=(-checks="$WEIR_TIDY_CHECKS")
run-clang-tidy-14 -p "$db" -j"$(nproc)" -quiet "${extra[@]}" "$PWD/($regex)\$" > "$log" 2>&1 || status=$?
# clang-tidy prints "N warnings generated." for warnings it suppressed (system headers, filtered
# checks): only the diagnostics of checks count.
diags=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E '^[^ ]+:[0-9]+:[0-9]+: (warning|error): ' | sort -u || true)
if [[ -n $diags ]] || ((status != 0)); then
  echo "scripts/tidy.sh: clang-tidy FAILED ($(printf '%s' "$diags" | grep -c . || true) diagnostics; full output: $log)"
  sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -v '^clang-tidy-14 \|warnings generated\.$\|^Suppressed \|^Use -header-filter\|^Running clang-tidy' | head -n 200
  exit 1
fi
echo "scripts/tidy.sh: clang-tidy clean ($(grep -c '^clang-tidy-14 ' "$log" || true) files)"
