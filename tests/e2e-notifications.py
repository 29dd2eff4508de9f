#!/usr/bin/env python3
"""One notification per event, from imagecache.so inside the real collectd (issue 14).

Each scenario runs `collectd -f` with the built plugin and the logfile plugin logging
every notification, and counts them:
  corrupt:     a cache with healthy files and one corrupt file: exactly one FAILURE
               (the plugin's, naming the file), no OKAY at start; after the repair
               exactly one OKAY;
  pass_failed: the base dir turns into a symlink (refused): one FAILURE "pass_failed"
               over several failing passes; put back: one OKAY;
  overdue:     a pass that takes longer than 2 x PassInterval (hashing a file at a
               low rate limit): one FAILURE "pass_overdue", and timestamp-last_pass is
               not sent while it lasts; one OKAY when the pass finishes;
  not_started: a typo'd option: one FAILURE "not_started" naming it.

Usage: e2e-notifications.py BUILD_DIR   (exit 0 pass, 1 fail, 77 skip)
"""
import hashlib
import importlib.util
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("e2e_collectd", os.path.join(HERE, "e2e-collectd.py"))
e2e = importlib.util.module_from_spec(spec)
spec.loader.exec_module(e2e)
check, wait_for, log = e2e.check, e2e.wait_for, e2e.log


def notifications(d, severity=None):
    lines = [l for l in d.log().splitlines() if "Notification: severity = " in l]
    if severity:
        lines = [l for l in lines if f"severity = {severity}," in l]
    return lines


def write_config(root, name, extra=""):
    instances = os.path.join(root, name, "instances")
    base = os.path.join(instances, "_base")
    os.makedirs(base)
    conf = os.path.join(root, name, "imagecache.conf")
    with open(conf, "w") as f:
        f.write(f"[imagecache]\ninstances_path={instances}\nhost={e2e.HOST}\n"
                f"checksum_base_images=true\nremove_unused_base_images=false\n"
                f"libvirt_uri={e2e.libvirt_test_uri(os.path.join(root, name))}\n{extra}")
    return base, conf


def make_file(base, image_id, data, sidecar=None):
    name = e2e.fingerprint(image_id)
    with open(os.path.join(base, name), "wb") as f:
        f.write(data)
    with open(os.path.join(base, name + ".sha1"), "w") as f:
        f.write((sidecar or hashlib.sha1(data).hexdigest()) + "\n")
    return name


def scenario_corrupt(root, plugin_dir):
    base, conf = write_config(root, "corrupt")
    for i in range(20):
        make_file(base, f"healthy-{i}", os.urandom(4096))
    data = os.urandom(8192)
    bad = make_file(base, "corrupt-image", data, sidecar="0" * 40)
    d = e2e.Collectd(root, "corrupt-collectd", plugin_dir,
                     f'  Config "{conf}"\n  PassInterval 1\n')
    d.start()
    try:
        wait_for(lambda: e2e.passes(d) >= 3, 15)
        got = notifications(d)
        check(len(notifications(d, "FAILURE")) == 1 and bad in notifications(d, "FAILURE")[0],
              "one corrupt file, 3+ passes: exactly one FAILURE, naming the file",
              "\n".join(got)[:1500])
        check(not notifications(d, "OKAY"), "no OKAY at start (20 healthy files)",
              "\n".join(notifications(d, "OKAY"))[:800])
        with open(os.path.join(base, bad + ".sha1"), "w") as f:
            f.write(hashlib.sha1(data).hexdigest() + "\n")
        wait_for(lambda: notifications(d, "OKAY"), 10)
        n = e2e.passes(d)
        wait_for(lambda: e2e.passes(d) >= n + 2, 10)
        okay = notifications(d, "OKAY")
        check(len(okay) == 1 and bad in okay[0], "repaired: exactly one OKAY", "\n".join(okay))
        check(len(notifications(d, "FAILURE")) == 1, "no further FAILURE after the repair")
    finally:
        d.stop()


def scenario_pass_failed(root, plugin_dir):
    base, conf = write_config(root, "failing")
    make_file(base, "some-image", os.urandom(4096))
    d = e2e.Collectd(root, "failing-collectd", plugin_dir, f'  Config "{conf}"\n  PassInterval 1\n')
    d.start()
    try:
        wait_for(lambda: e2e.passes(d) >= 1, 10)
        moved = base + ".real"
        os.rename(base, moved)
        os.symlink(moved, base)  # a base dir that is a symlink is refused: the pass fails
        wait_for(lambda: d.log().count("imagecache plugin: pass over") >= 3, 15)
        failed = [l for l in notifications(d, "FAILURE") if "pass_failed" in l]
        check(len(failed) == 1, "3+ failing passes: exactly one FAILURE pass_failed",
              "\n".join(notifications(d))[:1500])
        check(d.getval(f"{e2e.HOST}/imagecache/count-failed_passes") not in (None, 0),
              "count-failed_passes counts them", str(d.getval(f"{e2e.HOST}/imagecache/count-failed_passes")))
        os.unlink(base)
        os.rename(moved, base)
        okay = wait_for(lambda: [l for l in notifications(d, "OKAY") if "pass_failed" in l], 10)
        check(okay and len(okay) == 1, "the pass works again: one OKAY pass_failed", str(okay))
        check(wait_for(lambda: d.getval(f"{e2e.HOST}/imagecache/count-failed_passes") == 0, 5),
              "count-failed_passes back to 0")
    finally:
        d.stop()


def scenario_overdue(root, plugin_dir):
    base, conf = write_config(root, "overdue")
    name = e2e.fingerprint("slow-image")
    size = 12 * 1024 * 1024
    with open(os.path.join(base, name), "wb") as f:
        f.truncate(size)  # sparse zeros: 6 s of hashing at 2 MiB/s
    # .info with a timestamp: once verified, not hashed again for checksum_interval_seconds
    with open(os.path.join(base, name + ".info"), "w") as f:
        f.write('{"sha1": "%s", "sha1-timestamp": 0}\n' % hashlib.sha1(bytes(size)).hexdigest())
    d = e2e.Collectd(root, "overdue-collectd", plugin_dir,
                     f'  Config "{conf}"\n  PassInterval 1\n  ChecksumRateLimit 2097152\n')
    d.start()
    try:
        late = wait_for(lambda: [l for l in notifications(d, "FAILURE") if "pass_overdue" in l], 6)
        check(late and e2e.passes(d) == 0, "a pass running past 2 x PassInterval: FAILURE pass_overdue",
              d.log()[-1000:])
        check(d.getval(f"{e2e.HOST}/imagecache/timestamp-last_pass") is None,
              "timestamp-last_pass is not sent while no pass has finished")
        okay = wait_for(lambda: [l for l in notifications(d, "OKAY") if "pass_overdue" in l], 15)
        check(okay and len(okay) == 1 and e2e.passes(d) >= 1,
              "the pass finishes: one OKAY pass_overdue", d.log()[-1000:])
        check(len([l for l in notifications(d, "FAILURE") if "pass_overdue" in l]) == 1,
              "one FAILURE pass_overdue in all")
    finally:
        d.stop()


def scenario_not_started(root, plugin_dir):
    d = e2e.Collectd(root, "typo-collectd", plugin_dir,
                     '  Config "/nonexistent.conf"\n  RemoveUnusd true\n')
    d.start()
    try:
        got = wait_for(lambda: notifications(d, "FAILURE"), 10)
        check(got and len(got) == 1 and "not_started" in got[0] and "RemoveUnusd" in got[0],
              "a typo'd option: one FAILURE not_started naming it", d.log()[-800:])
    finally:
        d.stop()


def main():
    plugin_dir, root = e2e.setup("imagecache-e2e-notify-")
    if root is None:
        return plugin_dir
    try:
        scenario_corrupt(root, plugin_dir)
        scenario_pass_failed(root, plugin_dir)
        scenario_overdue(root, plugin_dir)
        scenario_not_started(root, plugin_dir)
    finally:
        e2e.cleanup(root)
    if e2e.failures:
        log(f"FAIL: {len(e2e.failures)} check(s) failed")
        return 1
    log("PASS: one notification per event")
    return 0


if __name__ == "__main__":
    sys.exit(main())
