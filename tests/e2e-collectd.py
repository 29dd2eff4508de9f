#!/usr/bin/env python3
"""End-to-end test of imagecache.so inside the real collectd daemon (issue 4).

Starts `collectd -f` with its own config, BaseDir and sockets on a demo cache
(a base file in use, a corrupt one, an old unused one, a young one) and checks:
  (a) values in the csv plugin's files and over the unixsock plugin,
  (b) write_graphite delivers them in plaintext to a listener on 127.0.0.1,
  (c) the FAILURE notification reaches the logfile plugin and NotificationExec,
      exactly once, and one OKAY after the file is repaired,
  (d) the old unused file is removed and count-removed / bytes-reclaimed say so,
      and a file removed later stops being sent and ages out of collectd's cache,
  (e) no "read-function ... took" warning,
  (f) InfluxDB 1.x receives them through the network plugin (skipped with a
      message when influxd is not installed),
plus an unknown option failing init and a prompt shutdown mid-hash.

Usage: e2e-collectd.py BUILD_DIR   (exit 0 pass, 1 fail, 77 skip)
"""
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import tempfile
import threading
import time

HOST = "e2e-host"
STOCK_PLUGIN_DIR = "/usr/lib/collectd"
TYPES_DB = "/usr/share/collectd/types.db"
SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DAY = 86400

failures = []
processes = []


def log(line):
    print(line, flush=True)


def check(ok, what, detail=""):
    log(("PASS: " if ok else "FAIL: ") + what + ("" if ok or not detail else f" ({detail})"))
    if not ok:
        failures.append(what)
    return ok


def wait_for(predicate, timeout, step=0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fingerprint(image_id):
    return hashlib.sha1(image_id.encode()).hexdigest()


def read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


# ---- dependencies ----

def ensure_collectd():
    script = os.path.join(SOURCE_ROOT, "scripts", "install-deps.sh")
    if shutil.which("collectd") is None and os.path.exists(script):
        subprocess.run([script, "--test"], check=False)
    if shutil.which("collectd") is None and not os.path.exists("/usr/sbin/collectd"):
        log("SKIP: collectd is not installed (Debian collectd-core) and could not be installed")
        sys.exit(77)
    for plugin in ["csv", "unixsock", "write_graphite", "logfile", "exec", "network"]:
        if not os.path.exists(os.path.join(STOCK_PLUGIN_DIR, plugin + ".so")):
            log(f"SKIP: collectd plugin {plugin}.so missing from {STOCK_PLUGIN_DIR}")
            sys.exit(77)


def collectd_binary():
    return shutil.which("collectd") or "/usr/sbin/collectd"


# ---- the demo cache ----

def libvirt_test_uri(root):
    """libvirt's test driver with no domains (test:///default has one whose
    disk cannot be read, which rightly blocks every removal)."""
    node = os.path.join(root, "libvirt-node.xml")
    with open(node, "w") as f:
        f.write("<node>\n</node>\n")
    return "test://" + node


class Cache:
    def __init__(self, root):
        self.instances = os.path.join(root, "instances")
        self.base = os.path.join(self.instances, "_base")
        os.makedirs(self.base)
        self.used = fingerprint("e2e-used-image")
        self.corrupt = fingerprint("e2e-corrupt-image")
        self.old = fingerprint("e2e-old-image")
        self.young = fingerprint("e2e-young-image") + "_10737418240"
        now = time.time()
        self.make(self.used, 256 * 1024, now - 3 * DAY)
        self.make(self.corrupt, 192 * 1024, now - 3 * DAY, sidecar="0" * 40)
        self.old_size = self.make(self.old, 128 * 1024, now - 3 * DAY)
        self.make(self.young, 64 * 1024, now - 60)
        self.instance("instance-0001", self.used)
        self.instance("instance-0002", self.corrupt)
        self.config = os.path.join(root, "imagecache.conf")
        self.libvirt_uri = libvirt_test_uri(root)
        with open(self.config, "w") as f:
            f.write("[imagecache]\n"
                    f"instances_path={self.instances}\n"
                    f"host={HOST}\n"
                    "checksum_base_images=true\n"
                    "remove_unused_base_images=true\n"
                    f"libvirt_uri={self.libvirt_uri}\n")

    def path(self, name):
        return os.path.join(self.base, name)

    def make(self, name, size, mtime, sidecar=None):
        data = os.urandom(size)
        with open(self.path(name), "wb") as f:
            f.write(data)
        self.write_sidecar(name, sidecar or hashlib.sha1(data).hexdigest())
        os.utime(self.path(name), (mtime, mtime))
        return size

    def write_sidecar(self, name, sha1):
        with open(self.path(name) + ".info", "w") as f:
            json.dump({"sha1": sha1, "sha1-timestamp": 0}, f)

    def repair(self, name):
        with open(self.path(name), "rb") as f:
            self.write_sidecar(name, hashlib.sha1(f.read()).hexdigest())

    def instance(self, instance, backing):
        directory = os.path.join(self.instances, instance)
        os.makedirs(directory)
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                        "../_base/" + backing, os.path.join(directory, "disk")], check=True)


# ---- listeners ----

class GraphiteListener:
    """A Graphite plaintext receiver: keeps every line it is sent."""

    def __init__(self):
        self.lines = []
        self.lock = threading.Lock()
        listener = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                for raw in self.rfile:
                    with listener.lock:
                        listener.lines.append(raw.decode(errors="replace").rstrip("\n"))

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def find(self, metric):
        with self.lock:
            return [line.split() for line in self.lines if line.startswith(metric + " ")]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Influx:
    def __init__(self, root):
        self.dir = os.path.join(root, "influx")
        self.http_port = free_port()
        self.rpc_port = free_port()
        self.udp_port = free_port(socket.SOCK_DGRAM)
        conf = os.path.join(self.dir, "influxdb.conf")
        os.makedirs(self.dir)
        with open(conf, "w") as f:
            f.write(f"""reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{self.dir}/meta"
[data]
  dir = "{self.dir}/data"
  wal-dir = "{self.dir}/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{self.http_port}"
  log-enabled = false
[continuous_queries]
  enabled = false
[[collectd]]
  enabled = true
  bind-address = "127.0.0.1:{self.udp_port}"
  database = "collectd"
  typesdb = "{TYPES_DB}"
  batch-size = 100
  batch-timeout = "200ms"
""")
        self.log = open(os.path.join(self.dir, "influxd.log"), "w")
        self.proc = subprocess.Popen(["influxd", "-config", conf], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        processes.append(self.proc)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def query(self, q):
        out = subprocess.run(["influx", "-host", "127.0.0.1", "-port", str(self.http_port),
                              "-database", "collectd", "-format", "json", "-execute", q],
                             capture_output=True, text=True, timeout=10)
        if out.returncode != 0:
            return None
        try:
            return json.loads(out.stdout or "{}")
        except json.JSONDecodeError:
            return None

    def ready(self):
        return wait_for(lambda: (self.query("SHOW DATABASES") or {}).get("results"), 60)


# ---- collectd ----

class Collectd:
    def __init__(self, root, name, plugin_dir, imagecache_block, extra="", interval=1,
                 section=None):
        """@section replaces the LoadPlugin/Plugin lines built from @imagecache_block."""
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir, mode=0o755)
        self.logfile = os.path.join(self.dir, "collectd.log")
        self.socket = os.path.join(self.dir, "collectd.sock")
        self.csv = os.path.join(self.dir, "csv")
        self.conf = os.path.join(self.dir, "collectd.conf")
        with open(self.conf, "w") as f:
            f.write(f"""Hostname "{HOST}"
FQDNLookup false
Interval {interval}
Timeout 2
BaseDir "{self.dir}"
PIDFile "{self.dir}/collectd.pid"
TypesDB "{TYPES_DB}"
PluginDir "{STOCK_PLUGIN_DIR}"
LoadPlugin logfile
<Plugin logfile>
  LogLevel info
  File "{self.logfile}"
  Timestamp true
  PrintSeverity true
</Plugin>
LoadPlugin csv
<Plugin csv>
  DataDir "{self.csv}"
  StoreRates false
</Plugin>
LoadPlugin unixsock
<Plugin unixsock>
  SocketFile "{self.socket}"
</Plugin>
{extra}
PluginDir "{plugin_dir}"
""")
            f.write(section or f"LoadPlugin imagecache\n<Plugin imagecache>\n{imagecache_block}</Plugin>\n")
        self.proc = None

    def start(self):
        self.out = open(os.path.join(self.dir, "stdout.log"), "w")
        self.proc = subprocess.Popen([collectd_binary(), "-f", "-C", self.conf], stdout=self.out,
                                     stderr=subprocess.STDOUT)
        processes.append(self.proc)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self):
        return read(self.logfile) + read(os.path.join(self.dir, "stdout.log"))

    def command(self, line):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(self.socket)
            f = s.makefile("rw")
            f.write(line + "\n")
            f.flush()
            status = f.readline()
            count = int(status.split(" ", 1)[0])
            return status, [f.readline().rstrip("\n") for _ in range(max(count, 0))]

    def getval(self, identifier):
        try:
            status, lines = self.command(f'GETVAL "{identifier}"')
        except (OSError, ValueError):
            return None
        for line in lines:
            key, _, value = line.partition("=")
            if key in ("value", "seconds"):
                return float(value)
        return None

    def listval(self):
        try:
            return [line.split(" ", 1)[1] for line in self.command("LISTVAL")[1]]
        except (OSError, ValueError, IndexError):
            return []

    def csv_values(self, plugin_instance, type_name):
        """Every value of <host>/imagecache[-instance]/<type>-<date> so far."""
        directory = os.path.join(self.csv, HOST,
                                 "imagecache" + ("-" + plugin_instance if plugin_instance else ""))
        values = []
        if os.path.isdir(directory):
            for name in sorted(os.listdir(directory)):
                if name.startswith(type_name + "-"):
                    for line in read(os.path.join(directory, name)).splitlines()[1:]:
                        values.append(float(line.split(",")[1]))
        return values


# ---- the checks ----

def main_run(root, plugin_dir):
    cache = Cache(root)
    graphite = GraphiteListener()
    notify_dir = os.path.join(root, "notify")
    os.makedirs(notify_dir)
    os.chmod(root, 0o755)
    os.chmod(notify_dir, 0o777)
    notify_file = os.path.join(notify_dir, "notifications.txt")
    notify_script = os.path.join(notify_dir, "notify.sh")
    with open(notify_script, "w") as f:
        f.write(f"#!/bin/sh\n{{ cat; echo '----'; }} >> {notify_file}\n")
    os.chmod(notify_script, 0o755)

    influx = None
    if shutil.which("influxd") and shutil.which("influx"):
        influx = Influx(root)
    else:
        log("SKIP: InfluxDB part: influxd/influx not installed (Debian influxdb, influxdb-client)")

    extra = f"""<LoadPlugin write_graphite>
  FlushInterval 1
</LoadPlugin>
<Plugin write_graphite>
  <Node "e2e">
    Host "127.0.0.1"
    Port "{graphite.port}"
    Protocol "tcp"
    LogSendErrors true
  </Node>
</Plugin>
LoadPlugin exec
<Plugin exec>
  NotificationExec "nobody" "{notify_script}"
</Plugin>
"""
    if influx:
        extra += f"""LoadPlugin network
<Plugin network>
  Server "127.0.0.1" "{influx.udp_port}"
</Plugin>
"""
    d = Collectd(root, "collectd", plugin_dir, f"""  Config "{cache.config}"
  PassInterval 3
  ChecksumRateLimit 104857600
  LibvirtURI "{cache.libvirt_uri}"
  PerImageValues all
""", extra)
    d.start()
    try:
        run_checks(d, cache, graphite, influx, notify_file)
    finally:
        d.stop()
        graphite.stop()
        if influx:
            influx.stop()
    return d


def passes(d):
    return d.log().count("imagecache plugin: pass took")


def run_checks(d, cache, graphite, influx, notify_file):
    total = f"{HOST}/imagecache/count-images"
    got = wait_for(lambda: d.getval(total) is not None, 15)
    if not check(got, "(a) unixsock GETVAL serves imagecache/count-images", d.log()[-2000:]):
        return
    check(d.getval(total) == 4, "(a) count-images is 4", str(d.getval(total)))
    listed = d.listval()
    check(f"{HOST}/imagecache-{cache.used}/gauge-in_use" in listed and
          f"{HOST}/imagecache-{cache.corrupt}/gauge-corrupt" in listed,
          "(a) unixsock LISTVAL lists per-image values", f"{len(listed)} listed")
    check(d.getval(f"{HOST}/imagecache-{cache.corrupt}/gauge-corrupt") == 1,
          "(a) the corrupt file's gauge-corrupt is 1 over unixsock")
    check(d.getval(f"{HOST}/imagecache-{cache.used}/bytes") == 256 * 1024,
          "(a) the used file's bytes over unixsock")
    wait_for(lambda: d.csv_values(cache.used, "bytes"), 5)
    check(256 * 1024 in d.csv_values(cache.used, "bytes"), "(a) csv file holds the used file's bytes")
    check(1 in d.csv_values(cache.corrupt, "gauge-corrupt"), "(a) csv file holds gauge-corrupt 1")

    # (d) the old unused file went in the first pass.
    check(not os.path.exists(cache.path(cache.old)), "(d) the old unused base file is removed")
    check(1 in d.csv_values("", "count-removed"), "(d) count-removed was 1 (csv)",
          str(d.csv_values("", "count-removed")))
    check(cache.old_size in d.csv_values("", "bytes-reclaimed"),
          f"(d) bytes-reclaimed was {cache.old_size} (csv)", str(d.csv_values("", "bytes-reclaimed")))
    check(not any(cache.old in v for v in d.listval()), "(d) the removed file has no values")

    # (b) Graphite plaintext: "<host>.imagecache-<file>.gauge-corrupt 1 <epoch>".
    metric = f"{HOST.replace('.', '_')}.imagecache-{cache.corrupt}.gauge-corrupt"
    lines = wait_for(lambda: graphite.find(metric), 10)
    check(lines and float(lines[-1][1]) == 1 and lines[-1][2].isdigit(),
          "(b) write_graphite delivered gauge-corrupt in plaintext format",
          f"{len(graphite.lines)} lines received")
    check(wait_for(lambda: graphite.find(f"{HOST}.imagecache.count-removed"), 5),
          "(b) write_graphite delivered the totals")

    # (c) exactly one FAILURE over at least two passes, in both consumers.
    wait_for(lambda: passes(d) >= 2, 10)
    failure = f"Notification: severity = FAILURE"
    failures_logged = [l for l in d.log().splitlines() if failure in l and cache.corrupt in l]
    check(len(failures_logged) == 1, "(c) logfile got exactly one FAILURE after 2+ passes",
          f"{len(failures_logged)} FAILURE lines, {passes(d)} passes")
    check(failures_logged and "expected sha1 " + "0" * 40 in failures_logged[0]
          and "actual " in failures_logged[0], "(c) the FAILURE names file, expected and actual digest")
    exec_seen = wait_for(lambda: "Severity: FAILURE" in read(notify_file), 5)
    check(exec_seen and f"PluginInstance: {cache.corrupt}" in read(notify_file)
          and f"Host: {HOST}" in read(notify_file),
          "(c) NotificationExec got the FAILURE with host and plugin_instance",
          read(notify_file)[:300])

    # Repair the corrupt file: one OKAY.
    cache.repair(cache.corrupt)
    okay = wait_for(lambda: [l for l in d.log().splitlines()
                             if "severity = OKAY" in l and cache.corrupt in l], 10)
    check(okay and len(okay) == 1, "(c) one OKAY after the corrupt file is repaired",
          str(okay))

    # A file removed later stops being sent and ages out of collectd's cache.
    old = time.time() - 3 * DAY
    os.utime(cache.path(cache.young), (old, old))
    gone = wait_for(lambda: not os.path.exists(cache.path(cache.young)), 10)
    check(gone, "(d) the young file, aged, is removed by a later pass")
    aged_out = wait_for(lambda: not any(cache.young in v for v in d.listval()), 10)
    check(aged_out, "(d) its values age out of collectd's cache (LISTVAL)")

    if influx:
        check_influx(influx, cache)

    text = d.log()
    check("took" not in "\n".join(l for l in text.splitlines() if "read-function" in l)
          and "read-function of plugin `imagecache'" not in text,
          "(e) no slow read warning in collectd's log")
    dispatch = [l for l in text.splitlines() if "imagecache plugin: sending" in l]
    if dispatch:
        log("INFO: " + dispatch[0].split("imagecache plugin: ", 1)[-1])
    errors = [l for l in text.splitlines() if "[error]" in l and "imagecache" in l]
    check(not errors, "no imagecache errors in collectd's log", "; ".join(errors)[:500])


def check_influx(influx, cache):
    if not check(influx.ready(), "(f) influxd answers on loopback"):
        return

    def series(q):
        result = influx.query(q) or {}
        try:
            return result["results"][0]["series"][0]["values"]
        except (KeyError, IndexError):
            return None

    q = ("SELECT last(value) FROM imagecache_value WHERE host = '%s' AND instance = '%s' "
         "AND type = 'gauge' AND type_instance = 'in_use'" % (HOST, cache.used))
    values = wait_for(lambda: series(q), 10)
    check(values and values[0][1] == 1, "(f) InfluxDB has imagecache_value in_use for the used file",
          str(values))
    q = ("SELECT last(value) FROM imagecache_seconds WHERE type = 'duration' "
         "AND type_instance = 'pass'")
    check(wait_for(lambda: series(q), 5), "(f) InfluxDB has imagecache_seconds (duration-pass)")


def check_bad_option(root, plugin_dir):
    d = Collectd(root, "bad-option", plugin_dir,
                 '  Config "/nonexistent.conf"\n  RemoveUnusd true\n')
    d.start()
    logged = wait_for(lambda: "unknown option 'RemoveUnusd'" in d.log(), 10)
    d.stop()
    check(logged and "Initialization of plugin `imagecache' failed" in d.log(),
          "an unknown option fails init with a message naming it", d.log()[-600:])


def check_snippet(root, plugin_dir):
    """contrib/collectd/imagecache.conf, every option uncommented, starts the plugin."""
    cache = Cache(os.path.join(root, "snippet"))
    values = {"Config": cache.config, "InstancesPath": cache.instances, "Host": HOST,
              "LedgerDir": os.path.join(cache.instances, "_ledger"),
              "LibvirtURI": cache.libvirt_uri}
    snippet = read(os.path.join(SOURCE_ROOT, "contrib", "collectd", "imagecache.conf"))
    if not check(snippet, "contrib/collectd/imagecache.conf exists"):
        return
    lines = []
    for line in snippet.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") and stripped[1:2].isupper():
            line = "  " + stripped[1:]
        option = line.split()[0] if line.split() else ""
        if option in values:
            line = f'  {option} "{values[option]}"'
        lines.append(line)
    d = Collectd(root, "snippet-collectd", plugin_dir, "", section="\n".join(lines) + "\n")
    d.start()
    started = wait_for(lambda: "imagecache plugin: pass took" in d.log(), 10)
    d.stop()
    check(started and "Initialization of plugin" not in d.log(), "contrib/collectd/imagecache.conf loads and runs",
          d.log()[-600:])


def check_prompt_shutdown(root, plugin_dir):
    cache_root = os.path.join(root, "slow")
    base = os.path.join(cache_root, "instances", "_base")
    os.makedirs(base)
    big = os.path.join(base, fingerprint("e2e-big-image"))
    with open(big, "wb") as f:
        f.truncate(256 * 1024 * 1024)  # sparse: 256 s of hashing at 1 MiB/s
    conf = os.path.join(cache_root, "imagecache.conf")
    with open(conf, "w") as f:
        f.write(f"[imagecache]\ninstances_path={cache_root}/instances\nhost={HOST}\n"
                f"checksum_base_images=true\nlibvirt_uri={libvirt_test_uri(root)}\n")
    d = Collectd(root, "shutdown", plugin_dir,
                 f'  Config "{conf}"\n  ChecksumRateLimit 1048576\n')
    d.start()
    started = wait_for(lambda: "imagecache plugin: checking" in d.log(), 10)
    time.sleep(1.5)  # the worker is hashing now
    t0 = time.monotonic()
    d.stop()
    took = time.monotonic() - t0
    mid_hash = "imagecache plugin: pass took" not in d.log()
    check(started and mid_hash and took < 3, f"collectd stops promptly mid-hash ({took:.2f} s)",
          d.log()[-600:])


def hold_usage_lock_shared(ledger_dir):
    """What a VM start's hook holds at prepare: the usage byte of .usage.lock,
    shared (an OFD lock, as the hook takes it). Returns the fd holding it."""
    os.makedirs(ledger_dir, exist_ok=True)
    fd = os.open(os.path.join(ledger_dir, ".usage.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    F_OFD_SETLK = 37
    flock = struct.pack("hh4xqqi4x", fcntl.F_RDLCK, os.SEEK_SET, 1, 1, 0)
    fcntl.fcntl(fd, F_OFD_SETLK, flock)
    return fd


def check_shutdown_waiting_for_lock(root, plugin_dir):
    """Issue 11 item 8: collectd shuts down while the pass waits for the usage
    lock (the wait is cancellable), and nothing is removed after shutdown began."""
    cache_root = os.path.join(root, "locked-cache")
    base = os.path.join(cache_root, "instances", "_base")
    os.makedirs(base)
    old = os.path.join(base, fingerprint("e2e-unused-image"))
    with open(old, "wb") as f:
        f.write(b"unused")
    past = time.time() - 3 * DAY
    os.utime(old, (past, past))
    conf = os.path.join(cache_root, "imagecache.conf")
    with open(conf, "w") as f:
        f.write(f"[imagecache]\ninstances_path={cache_root}/instances\nhost={HOST}\n"
                f"libvirt_uri={libvirt_test_uri(root)}\n")
    fd = hold_usage_lock_shared(os.path.join(cache_root, "instances", "_ledger"))
    try:
        d = Collectd(root, "locked", plugin_dir, f'  Config "{conf}"\n')
        d.start()
        started = wait_for(lambda: "imagecache plugin: checking" in d.log(), 10)
        time.sleep(1.0)  # the pass has decided and waits for the lock (up to 5 s)
        t0 = time.monotonic()
        d.stop()
        took = time.monotonic() - t0
    finally:
        os.close(fd)
    check(started and took < 3 and os.path.exists(old),
          f"collectd stops promptly while the pass waits for the usage lock ({took:.2f} s), "
          "nothing removed", d.log()[-600:])


def setup(prefix):
    """The built plugin's dir and a temp root, or an exit status (usage, not built)."""
    if len(sys.argv) != 2:
        print(sys.modules["__main__"].__doc__, file=sys.stderr)
        return 2, None
    plugin_dir = os.path.abspath(os.path.join(sys.argv[1], "collectd-plugin"))
    if not os.path.exists(os.path.join(plugin_dir, "imagecache.so")):
        log(f"FAIL: {plugin_dir}/imagecache.so not built")
        return 1, None
    ensure_collectd()
    root = tempfile.mkdtemp(prefix=prefix)
    os.chmod(root, 0o755)
    return plugin_dir, root


def cleanup(root):
    """Kills what is left of the started daemons, removes @root (or keeps it)."""
    for proc in processes:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if os.environ.get("IMAGECACHE_E2E_KEEP"):
        log(f"INFO: kept {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    plugin_dir = os.path.abspath(os.path.join(sys.argv[1], "collectd-plugin"))
    if not os.path.exists(os.path.join(plugin_dir, "imagecache.so")):
        log(f"FAIL: {plugin_dir}/imagecache.so not built")
        return 1
    ensure_collectd()
    root = tempfile.mkdtemp(prefix="imagecache-e2e-collectd-")
    keep = os.environ.get("IMAGECACHE_E2E_KEEP")
    started = time.monotonic()
    try:
        main_run(root, plugin_dir)
        check_bad_option(root, plugin_dir)
        check_snippet(root, plugin_dir)
        check_prompt_shutdown(root, plugin_dir)
        check_shutdown_waiting_for_lock(root, plugin_dir)
    finally:
        for proc in processes:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if keep:
            log(f"INFO: kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    log(f"INFO: e2e took {time.monotonic() - started:.1f} s")
    if failures:
        log(f"FAIL: {len(failures)} check(s) failed")
        return 1
    log("PASS: collectd end-to-end")
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sys.exit(main())
