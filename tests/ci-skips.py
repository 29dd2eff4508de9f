#!/usr/bin/env python3
"""ci-skips.py TESTLOG.json...: one line per skip in meson's test logs, for .ci/run.

A whole test meson counted SKIP (exit 77) prints "<build> <test>: <reason>"; a
skipped part of a test meson counted OK (a TAP "ok N ... # SKIP" from
g_test_skip, or a script's own "SKIP: ..." line) prints "... (part)"."""
import json
import re
import sys

TAP_SKIP = re.compile(r"^ok \d+ (.*?)\s*# SKIP\s*(.*)$", re.IGNORECASE)
SCRIPT_SKIP = re.compile(r"^(?:# )?SKIP: (.*)$")


def reason_of(stdout):
    for line in stdout.splitlines():
        m = SCRIPT_SKIP.match(line.strip()) or TAP_SKIP.match(line.strip())
        if m:
            return m.group(m.lastindex)
    return "exit status 77"


for path in sys.argv[1:]:
    build = path.split("/meson-logs/")[0]
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                test = json.loads(line)
            except ValueError:
                continue
            name = test.get("name", "?")
            stdout = test.get("stdout") or ""
            if test.get("result") == "SKIP":
                print(f"{build} {name}: {reason_of(stdout)}")
                continue
            if test.get("result") != "OK":
                continue  # failures are counted already
            for out in stdout.splitlines():
                out = out.strip()
                m = TAP_SKIP.match(out)
                if m:
                    print(f"{build} {name}: {m.group(1)} {m.group(2)} (part)")
                    continue
                m = SCRIPT_SKIP.match(out)
                if m:
                    print(f"{build} {name}: {m.group(1)} (part)")
