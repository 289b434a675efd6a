#!/usr/bin/env python3
"""Summarises a scripts/test-kernel.sh run: for each suite, the tests run and failed (from the
gtest XML report the guest sent back), the exit status, and for a binary that did not finish
the test it was running (from the console log). Exits 1 when anything failed.

    test-kernel-report.py OUT_DIR "bpf e2e"
"""
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def last_unfinished_test(console: str, binary: str) -> str | None:
    """The test that started last and never ended in the console section of `binary`."""
    section = console.split(f"==== {binary} ")[-1]
    running = None
    for line in section.splitlines():
        m = re.search(r"\[ RUN      \] (\S+)", line)
        if m:
            running = m.group(1)
        elif re.search(r"\[ +(OK|FAILED|SKIPPED) +\] ", line):
            running = None
    return running


def report(out: Path, suite: str, console: str) -> bool:
    binary = f"weir_{suite}_tests"
    rc_file, xml_file = out / "results" / f"{suite}.rc", out / "results" / f"{suite}.xml"
    if not rc_file.exists():
        test = last_unfinished_test(console, binary)
        print(f"test-kernel: FAILED: {binary} did not finish in the guest"
              + (f" (running {test})" if test else ""))
        return False
    rc, secs = (int(x) for x in rc_file.read_text().split())
    if not xml_file.exists():
        test = last_unfinished_test(console, binary)
        print(f"test-kernel: FAILED: {binary} exited with status {rc} after {secs}s without a report"
              + (f"; it was running {test}" if test else ""))
        return False
    root = ET.parse(xml_file).getroot()
    failed = []
    for case in root.iter("testcase"):
        failures = case.findall("failure")
        if failures:
            msg = failures[0].get("message", "").strip().splitlines()
            failed.append((f"{case.get('classname')}.{case.get('name')}", msg[:6]))
    total = int(root.get("tests", 0))
    print(f"test-kernel: {binary}: {total} tests, {len(failed)} failed, exit status {rc}, {secs}s")
    for name, msg in failed:
        print(f"test-kernel:   FAILED {name}")
        for line in msg:
            print(f"test-kernel:       {line}")
    if rc != 0 and not failed:
        print(f"test-kernel: FAILED: {binary} exited with status {rc} (see the console log)")
    return rc == 0 and not failed and total > 0


def main() -> int:
    out, suites = Path(sys.argv[1]), sys.argv[2].split()
    console_file = out / "console.log"
    console = console_file.read_text(errors="replace") if console_file.exists() else ""
    ok = True
    for suite in suites:
        ok = report(out, suite, console) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
