#!/usr/bin/env python3
"""Summarises a scripts/test-kernel.sh run: for each suite, the tests run and failed (from the
gtest XML report and exit status of each process the guest ran, which it sent back), and the
tests that did not finish. When the results never came back (the guest hung or died), the
console tells what it can. Exits 1 when anything failed or nothing ran.

    test-kernel-report.py OUT_DIR "bpf e2e"
"""
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def short(msg: str) -> list[str]:
    """A failure message cut to its start (location, assertion) and its end (the error)."""
    lines = msg.strip().splitlines()
    return lines[:5] + ["..."] + lines[-2:] if len(lines) > 8 else lines


def outcomes(xml_file: Path) -> dict[str, list[str] | None]:
    """Test name -> None when it passed, else its first failure message."""
    if not xml_file.exists():
        return {}
    result = {}
    for case in ET.parse(xml_file).getroot().iter("testcase"):
        failures = case.findall("failure")
        name = f"{case.get('classname')}.{case.get('name')}"
        result[name] = short(failures[0].get("message", "")) if failures else None
    return result


def console_outcomes(console: str, binary: str) -> tuple[dict[str, list[str] | None], str | None]:
    """Outcomes printed on the console in the section of `binary`, and the test left running."""
    parts = console.split(f"==== {binary}: ")
    result, running = {}, None
    for line in (parts[1] if len(parts) > 1 else "").splitlines():
        if m := re.search(r"\[ RUN      \] (\S+)", line):
            running = m.group(1)
        elif m := re.search(r"\[  FAILED  \] (\S+) \(", line):
            result[m.group(1)], running = ["(failure message on the console)"], None
        elif m := re.search(r"\[       OK \] (\S+) \(", line):
            result[m.group(1)], running = None, None
    return result, running


def report(results: Path, suite: str, console: str) -> bool:
    binary, d = f"weir_{suite}_tests", results / suite
    seen, running = console_outcomes(console, binary)
    groups_file = d / "groups"
    if not groups_file.exists():
        failed = [t for t, msg in seen.items() if msg is not None]
        for t in failed:
            print(f"test-kernel:   FAILED {t} (from the console)")
        print(f"test-kernel: FAILED: the results of {binary} never came back from the guest"
              + (f"; it was running {running}" if running else ""))
        return False
    pairs = [line.split() for line in groups_file.read_text().splitlines() if line.strip()]
    failed, unfinished, secs, done = [], [], 0, {}
    for group in dict.fromkeys(g for g, _ in pairs):
        rc_file = d / f"{group}.rc"
        if rc_file.exists():
            rc, s = (int(x) for x in rc_file.read_text().split())
            secs += s
            done[group] = (rc, outcomes(d / f"{group}.xml"))
    for group, test in pairs:
        if group not in done:
            unfinished.append(test)
            continue
        rc, got = done[group]
        if test in got:
            if got[test] is not None:
                failed.append((test, got[test]))
        elif test in seen:  # no report (the process crashed or timed out): what the console shows
            if seen[test] is not None:
                failed.append((test, seen[test]))
        else:
            failed.append((f"{test} (its process exited with status {rc} before it finished: "
                           f"crashed, or timed out with 124/143)", []))
    print(f"test-kernel: {binary}: {len(pairs)} tests, {len(failed)} failed, "
          f"{len(unfinished)} did not run, {secs}s")
    for name, msg in failed:
        print(f"test-kernel:   FAILED {name}")
        for line in msg:
            print(f"test-kernel:       {line}")
    if unfinished:
        print(f"test-kernel:   NOT RUN (the guest stopped): {' '.join(unfinished)}")
    if not pairs:
        print(f"test-kernel: FAILED: {binary} listed no test (a WEIR_VM_GTEST_FILTER that matches none?)")
    return bool(pairs) and not failed and not unfinished


def main() -> int:
    out, suites = Path(sys.argv[1]), sys.argv[2].split()
    console_file = out / "console.log"
    console = console_file.read_text(errors="replace") if console_file.exists() else ""
    ok = True
    for suite in suites:
        ok = report(out / "results", suite, console) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
