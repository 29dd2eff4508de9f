#!/usr/bin/env python3
"""imagecachectl's JSON output against docs/report.schema.json, and its exit
statuses, on a real cache: a healthy file, a corrupt one, one in use by an
instance disk, one in use but absent, and a missing base dir.

Usage: test-cli-json.py IMAGECACHECTL SOURCE_ROOT (TAP output)."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

try:
    import jsonschema
except ImportError:  # Debian's python3-jsonschema: scripts/install-deps.sh --test
    print("1..0 # SKIP python3-jsonschema is not installed")
    sys.exit(0)
if shutil.which("qemu-img") is None:
    print("1..0 # SKIP qemu-img (qemu-utils) is not installed")
    sys.exit(0)

CTL, SRC = sys.argv[1], sys.argv[2]
HEALTHY = "a" * 40
CORRUPT = "b" * 40
IN_USE = "c" * 40
ABSENT = "d" * 40
DAY = 86400

results = []


def check(ok, what, detail=""):
    """One TAP line; @detail (shown as comments) only when it fails."""
    results.append((bool(ok), what, "" if ok else str(detail)))


# The CLI logs the events it meets as warnings: not fatal here.
CTL_ENV = {k: v for k, v in os.environ.items() if k != "G_DEBUG"}


def ctl(*args):
    proc = subprocess.run([CTL, *args], capture_output=True, text=True, timeout=60, env=CTL_ENV)
    return proc.returncode, proc.stdout, proc.stderr


def old(path, days=30):
    t = os.path.getmtime(path) - days * DAY
    os.utime(path, (t, t))


def make_cache(root):
    inst = os.path.join(root, "inst")
    base = os.path.join(inst, "_base")
    os.makedirs(base)
    for name in (HEALTHY, CORRUPT, IN_USE):
        with open(os.path.join(base, name), "wb") as f:
            f.write(name.encode() * 1000)
        old(os.path.join(base, name))
    with open(os.path.join(base, CORRUPT + ".sha1"), "w") as f:
        f.write("0" * 40 + "\n")
    # A VM whose instance dir is its UUID; its disk's backing file is IN_USE.
    vm = os.path.join(inst, "3f2a4b8e-1c1d-4e0f-9a55-0123456789ab")
    os.makedirs(vm)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                    os.path.join(base, IN_USE), os.path.join(vm, "disk"), "1M"], check=True)
    # One whose base file has gone.
    gone = os.path.join(inst, "9d0c5b1e-7a4e-4b8c-8d3f-fedcba987654")
    os.makedirs(gone)
    subprocess.run(["qemu-img", "create", "-q", "-u", "-f", "qcow2", "-F", "raw", "-b",
                    os.path.join(base, ABSENT), os.path.join(gone, "disk"), "1M"], check=True)
    conf = os.path.join(root, "imagecache.conf")
    with open(conf, "w") as f:
        f.write("[imagecache]\n"
                f"instances_path={inst}\n"
                "host=jsontest\n"
                "checksum_base_images=true\n"
                "disk_high_watermark_percent=99\n"
                "disk_low_watermark_percent=90\n"
                # libvirt is not reachable here: the output must say so
                "libvirt_uri=qemu+unix:///system?socket=/nonexistent/libvirt-sock\n")
    return conf, inst


def main():
    with open(os.path.join(SRC, "docs", "report.schema.json")) as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)

    def valid(doc, what):
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
        check(not errors, f"{what} matches the schema",
              "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:5]))

    root = tempfile.mkdtemp()
    try:
        conf, inst = make_cache(root)

        status, out, err = ctl("report", "--json", "--config", conf)
        check(status == 3, "report exits 3 when corrupt or absent files are found", f"{status}: {err}")
        report = json.loads(out)
        valid(report, "report --json")
        check(report["format_version"] == 1, "format_version is 1")
        fs = report["filesystem"]
        check(fs["known"] and fs["total_bytes"] > 0 and fs["high_watermark_percent"] == 99
              and fs["low_watermark_percent"] == 90, "the filesystem block has the watermarks", fs)
        codes = {n["code"] for n in report["notes"]}
        check("libvirt_unreachable" in codes, "an unreachable libvirt is a coded note", codes)
        verdicts = {i["name"]: i["verdict"] for i in report["images"]}
        check(verdicts.get(CORRUPT) == "corrupt" and verdicts.get(ABSENT) == "absent"
              and verdicts.get(IN_USE) == "active", "the verdicts of the cache as built", verdicts)

        status, out, err = ctl("report", "--check", "--config", conf)
        check(status == 2 and out.startswith("IMAGECACHE CRITICAL - 1 corrupt, 1 in use but absent;")
              and " | images=3 " in out
              and all(f" {perf} " in out.rstrip("\n") + " " for perf in ("corrupt=1", "absent=1")),
              "report --check: CRITICAL, one line with perfdata", f"{status}: {out} {err}")

        status, out, _ = ctl("run", "--dry-run", "--json", "--config", conf)
        check(status == 3, "run --dry-run exits 3 too", status)
        valid(json.loads(out), "run --dry-run --json")

        for name in (HEALTHY, CORRUPT, IN_USE, ABSENT):
            status, out, err = ctl("report", "--explain", name, "--json", "--config", conf)
            check(status == 0, f"explain {name[:4]} exits 0", f"{status}: {err}")
            doc = json.loads(out)
            valid(doc, f"report --explain {name[:4]} --json")
            check(doc["image"]["name"] == name, f"explain {name[:4]} explains that file")
        doc = json.loads(ctl("report", "--explain", IN_USE, "--json", "--config", conf)[1])
        answers = {a["witness"]: a for a in doc["witness_answers"]}
        check(doc["in_use"] and not answers["libvirt"]["consulted"]
              and answers["instances_dir"]["names_user"],
              "explain says the file is in use, by whom, and that libvirt was not consulted")

        # Without the corrupt and the absent file: 0.
        os.remove(os.path.join(inst, "_base", CORRUPT))
        shutil.rmtree(os.path.join(inst, "9d0c5b1e-7a4e-4b8c-8d3f-fedcba987654"))
        status, out, err = ctl("report", "--json", "--config", conf)
        check(status == 0, "report exits 0 on a healthy cache", f"{status}: {err}")
        status, out, err = ctl("report", "--check", "--config", conf)
        check(status == 0 and out.startswith("IMAGECACHE OK - 2 base files"),
              "report --check: OK", f"{status}: {out} {err}")
        # A disk whose header cannot be read: its base files are unknown, nothing is removed.
        bad = os.path.join(inst, "0b5e1c2d-0000-4000-8000-000000000bad")
        os.makedirs(bad)
        with open(os.path.join(bad, "disk"), "wb") as f:
            f.write(b"QFI\xfb\x00\x00")
        status, out, err = ctl("report", "--check", "--config", conf)
        check(status == 1 and "WARNING - nothing can be removed (instance_unreadable)" in out,
              "report --check: WARNING when a witness could not be read", f"{status}: {out} {err}")
        shutil.rmtree(bad)
        status, out, err = ctl("report", "--check", "--config", conf + ".missing")
        check(status == 3 and out.startswith("IMAGECACHE UNKNOWN - "),
              "report --check: UNKNOWN when it cannot run", f"{status}: {out} {err}")

        # An unmounted share: the base dir is gone.
        shutil.rmtree(os.path.join(inst, "_base"))
        status, out, err = ctl("report", "--json", "--config", conf)
        check(status == 1 and "does not exist" in err,
              "report on a missing base dir exits 1 with a warning", f"{status}: {err}")
        doc = json.loads(out)
        valid(doc, "report --json without a base dir")
        check(not doc["base_dir_exists"]
              and "base_dir_missing" in {n["code"] for n in doc["notes"]},
              "a missing base dir is base_dir_exists false and a base_dir_missing note")
        status, out, err = ctl("run", "--config", conf)
        check(status == 1 and "does not exist" in err and "does not exist" in out,
              "run on a missing base dir warns and exits 1", f"{status}: {err}")
        status, out, err = ctl("report", "--check", "--config", conf)
        check(status == 2 and out.startswith("IMAGECACHE CRITICAL - base dir "),
              "report --check: CRITICAL without a base dir", f"{status}: {out} {err}")
    finally:
        shutil.rmtree(root)

    print(f"1..{len(results)}")
    for n, (ok, what, detail) in enumerate(results, 1):
        print(f"{'ok' if ok else 'not ok'} {n} - {what}")
        for line in detail.splitlines():
            print(f"# {line}")
    return 0 if all(ok for ok, _, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
