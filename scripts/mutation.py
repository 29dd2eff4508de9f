#!/usr/bin/env python3
"""mutation.py list SPEC | apply SPEC NAME — the mutations of scripts/mutate.sh.

SPEC holds mutations, each:

    @@ name: what rule it breaks
    file: common/pass.c
    - exact old line(s)
    + new line(s)

An optional "tests: NAME..." line names the meson tests that must catch it instead of
the unit and stress suites (for a rule only an e2e test can see).

A hunk is a run of "- " lines (the old text, which must occur exactly once in the
file) and the "+ " lines after it (its replacement, none to delete). A mutation may
have several hunks and several files. Lines starting with '#' outside hunks are
comments. "apply" edits the files in the current directory and fails, changing
nothing, when any old text is not found exactly once."""
import sys


def parse(path):
    mutations, current, file, hunk = {}, None, None, None
    for raw in open(path, encoding="utf-8"):
        line = raw.rstrip("\n")
        if line.startswith("@@ "):
            name, _, why = line[3:].partition(":")
            current = {"why": why.strip(), "hunks": [], "tests": ""}
            mutations[name.strip()] = current
            file, hunk = None, None
        elif line.startswith("tests: ") and current is not None:
            current["tests"] = line[7:].strip()
        elif line.startswith("file: "):
            file, hunk = line[6:].strip(), None
        elif line.startswith("-") and current is not None and file:
            if hunk is None or hunk["new"]:
                hunk = {"file": file, "old": [], "new": []}
                current["hunks"].append(hunk)
            hunk["old"].append(line[2:])
        elif line.startswith("+") and hunk is not None:
            hunk["new"].append(line[2:])
        elif line.strip() == "" or line.startswith("#"):
            continue
        else:
            sys.exit(f"{path}: cannot parse: {line!r}")
    return mutations


def apply(mutations, name):
    if name not in mutations:
        sys.exit(f"no mutation '{name}'")
    texts = {}
    for hunk in mutations[name]["hunks"]:
        f = hunk["file"]
        if f not in texts:
            texts[f] = open(f, encoding="utf-8").read()
        old = "\n".join(hunk["old"]) + "\n"
        new = "\n".join(hunk["new"]) + "\n" if hunk["new"] else ""
        count = texts[f].count(old)
        if count != 1:
            sys.exit(f"{f}: found {count} times, expected once:\n{old}")
        texts[f] = texts[f].replace(old, new)
    for f, text in texts.items():
        open(f, "w", encoding="utf-8").write(text)


if __name__ == "__main__":
    cmd, spec = sys.argv[1], sys.argv[2]
    mutations = parse(spec)
    if cmd == "list":
        print("\n".join(mutations))
    elif cmd == "why":
        print(mutations[sys.argv[3]]["why"])
    elif cmd == "tests":
        print(mutations[sys.argv[3]]["tests"])
    elif cmd == "apply":
        apply(mutations, sys.argv[3])
    else:
        sys.exit(f"unknown command {cmd}")
