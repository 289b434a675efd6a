#!/usr/bin/env python3
"""Summarises a scripts/test-kernel.sh run: for each suite, the tests run and failed (from the
exit status and gtest XML report of each test, which the guest sent back), and the tests that
did not finish. Exits 1 when anything failed or nothing ran.

    test-kernel-report.py OUT_DIR "bpf e2e"
"""
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def failure_lines(xml_file: Path) -> list[str]:
    """The first failure message of the test's report, shortened to its start and end."""
    if not xml_file.exists():
        return []
    for case in ET.parse(xml_file).getroot().iter("testcase"):
        for failure in case.findall("failure"):
            msg = failure.get("message", "").strip().splitlines()
            return msg[:5] + ["..."] + msg[-2:] if len(msg) > 8 else msg
    return []


def from_console(console: str, binary: str) -> None:
    """What the console shows of a suite whose results never came back (the guest stopped)."""
    section = console.split(f"==== {binary}: ")
    if len(section) < 2:
        print(f"test-kernel: FAILED: {binary} never ran in the guest")
        return
    running = None
    for line in section[1].splitlines():
        if m := re.search(r"\[ RUN      \] (\S+)", line):
            running = m.group(1)
        elif m := re.search(r"\[  FAILED  \] (\S+) \(", line):
            print(f"test-kernel:   FAILED {m.group(1)} (from the console)")
            running = None
        elif re.search(r"\[       OK \] ", line):
            running = None
    print(f"test-kernel: FAILED: the results of {binary} never came back from the guest"
          + (f"; it was running {running}" if running else ""))


def report(results: Path, suite: str, console: str) -> bool:
    binary, d = f"weir_{suite}_tests", results / suite
    listed = d / "list"
    if not listed.exists():
        from_console(console, binary)
        return False
    tests = listed.read_text().split()
    failed, unfinished, secs = [], [], 0
    for t in tests:
        rc_file = d / f"{t}.rc"
        if not rc_file.exists():
            unfinished.append(t)
            continue
        rc, s = (int(x) for x in rc_file.read_text().split())
        secs += s
        if rc != 0:
            why = "" if (d / f"{t}.xml").exists() else f" (exit status {rc}, no report: crashed or timed out)"
            failed.append((t + why, failure_lines(d / f"{t}.xml")))
    print(f"test-kernel: {binary}: {len(tests)} tests, {len(failed)} failed, "
          f"{len(unfinished)} did not run or finish, {secs}s")
    for name, msg in failed:
        print(f"test-kernel:   FAILED {name}")
        for line in msg:
            print(f"test-kernel:       {line}")
    for name in unfinished[:1]:
        print(f"test-kernel:   NOT FINISHED {name} (the guest stopped while it ran)")
    if len(unfinished) > 1:
        print(f"test-kernel:   NOT RUN {len(unfinished) - 1} more: {' '.join(unfinished[1:])}")
    if not tests:
        print(f"test-kernel: FAILED: {binary} listed no test (a WEIR_VM_GTEST_FILTER that matches none?)")
    return bool(tests) and not failed and not unfinished


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
