#!/usr/bin/env python3
"""The dashboards and alert rules against real back ends fed by the real plugin (issue 14).

Starts, each in a temp dir on loopback ports and stopped afterwards:
  Graphite   Debian's carbon-cache (line receiver) and graphite-web (render API, Django
             runserver with a settings module of its own),
  InfluxDB   influxd with its collectd input (as tests/e2e-collectd.py),
  Prometheus Debian's prometheus scraping collectd's write_prometheus (honor_labels),
and four collectd daemons, each with the load plugin and the built imagecache.so:
  e2e-host     a cache with a corrupt and a used base file (the dashboards' data),
  e2e-typo     a typo'd imagecache option: the plugin never starts,
  e2e-hung     the first pass finishes, the next hashes a large file at 1 MiB/s,
  e2e-failing  its base dir is a symlink: every pass fails.
Then checks:
  Graphite:   every dashboard panel target and template query, and every Graphite alert
              rule target, rendered by graphite-web, returns series with values; each
              rule, reduced (last non-null) and thresholded as Grafana does, fires for
              exactly the hosts it must (corrupt: e2e-host; failed passes: e2e-failing;
              absent: e2e-typo and e2e-hung); every label an annotation uses is one
              Grafana gets from the Graphite series (tags + name).
  InfluxDB:   the field keys of the imagecache measurements match
              tests/data/grafana/influxdb-fields.json (which tests/test-grafana.py
              checks the queries against; IMAGECACHE_REGEN=1 rewrites it); every panel
              query, template query and rule query returns data; the rules fire for
              exactly the hosts they must (the stale rule: e2e-hung).
  Prometheus: promtool check rules and promtool test rules; the real Prometheus loads
              the rules with health "ok"; every dashboard expression returns series; each
              alert expression selects exactly the hosts it must.

Usage: e2e-backends.py BUILD_DIR   (exit 0 pass, 1 fail, 77 skip)
"""
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.path.dirname(HERE)
spec = importlib.util.spec_from_file_location("e2e_collectd", os.path.join(HERE, "e2e-collectd.py"))
e2e = importlib.util.module_from_spec(spec)
spec.loader.exec_module(e2e)
check, wait_for, log = e2e.check, e2e.wait_for, e2e.log

GRAFANA = os.path.join(SOURCE_ROOT, "contrib", "grafana")
RULES_PROM = os.path.join(SOURCE_ROOT, "contrib", "prometheus", "imagecache-rules.yml")
FIELDS_FILE = os.path.join(HERE, "data", "grafana", "influxdb-fields.json")
HOSTS = ["e2e-host", "e2e-typo", "e2e-hung", "e2e-failing"]


def http_get(url, timeout=10):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return json.loads(r.read().decode())
    except Exception as ex:  # noqa: BLE001 - any failure is "no answer"
        return {"error": str(ex)}


def start(cmd, logpath, env=None):
    out = open(logpath, "w")
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    e2e.processes.append(proc)
    return proc


def stop(proc):
    if proc and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# ---- Graphite ----

class Graphite:
    def __init__(self, root):
        self.dir = os.path.join(root, "graphite")
        storage = os.path.join(self.dir, "storage")
        for sub in ("whisper", "log/webapp", "lists"):
            os.makedirs(os.path.join(storage, sub))
        self.line_port, pickle_port, query_port = e2e.free_port(), e2e.free_port(), e2e.free_port()
        self.web_port = e2e.free_port()
        with open(os.path.join(self.dir, "carbon.conf"), "w") as f:
            f.write(f"""[cache]
STORAGE_DIR = {storage}
LOCAL_DATA_DIR = {storage}/whisper
WHITELISTS_DIR = {storage}/lists
CONF_DIR = {self.dir}
LOG_DIR = {storage}/log
PID_DIR = {self.dir}
ENABLE_LOGROTATION = False
USER =
MAX_CACHE_SIZE = inf
MAX_UPDATES_PER_SECOND = inf
MAX_CREATES_PER_MINUTE = inf
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = {self.line_port}
ENABLE_UDP_LISTENER = False
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = {pickle_port}
CACHE_QUERY_INTERFACE = 127.0.0.1
CACHE_QUERY_PORT = {query_port}
ENABLE_TAGS = False
""")
        with open(os.path.join(self.dir, "storage-schemas.conf"), "w") as f:
            f.write("[all]\npattern = .*\nretentions = 1s:1h\n")
        with open(os.path.join(self.dir, "ic_graphite_settings.py"), "w") as f:
            f.write(f"""SECRET_KEY = 'imagecache-e2e'
GRAPHITE_ROOT = '/usr/share/graphite-web'
CONF_DIR = '{self.dir}'
STORAGE_DIR = '{storage}'
WHISPER_DIR = '{storage}/whisper'
LOG_DIR = '{storage}/log/webapp'
INDEX_FILE = '{storage}/index'
CARBONLINK_HOSTS = ['127.0.0.1:{query_port}']
DATABASES = {{'default': {{'NAME': '{self.dir}/graphite.db', 'ENGINE': 'django.db.backends.sqlite3'}}}}
DEFAULT_XFILES_FACTOR = 0
""")
        self.env = dict(os.environ, PYTHONPATH=self.dir, GRAPHITE_SETTINGS_MODULE="ic_graphite_settings",
                        DJANGO_SETTINGS_MODULE="graphite.settings")
        self.carbon = start(["carbon-cache", f"--config={self.dir}/carbon.conf", "--nodaemon", "start"],
                            os.path.join(self.dir, "carbon.log"))
        subprocess.run(["graphite-manage", "migrate", "--run-syncdb"], env=self.env, check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.web = start(["graphite-manage", "runserver", f"127.0.0.1:{self.web_port}", "--noreload"],
                         os.path.join(self.dir, "web.log"), env=self.env)

    def ready(self):
        return wait_for(lambda: isinstance(self.find("*"), list), 60)

    def render(self, target, frm="-5min"):
        q = urllib.parse.urlencode({"target": target, "from": frm, "format": "json"})
        return http_get(f"http://127.0.0.1:{self.web_port}/render?{q}")

    def find(self, query):
        q = urllib.parse.urlencode({"query": query})
        return http_get(f"http://127.0.0.1:{self.web_port}/metrics/find?{q}")

    def stop(self):
        stop(self.web)
        stop(self.carbon)


# ---- Prometheus ----

class Prometheus:
    def __init__(self, root, targets):
        self.dir = os.path.join(root, "prometheus")
        os.makedirs(self.dir)
        self.port = e2e.free_port()
        shutil.copy(RULES_PROM, os.path.join(self.dir, "rules.yml"))
        with open(os.path.join(self.dir, "prometheus.yml"), "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "rule_files:\n  - rules.yml\nscrape_configs:\n  - job_name: collectd\n"
                    "    honor_labels: true\n    static_configs:\n      - targets: ["
                    + ", ".join(f"'127.0.0.1:{t}'" for t in targets) + "]\n")
        self.proc = start(["prometheus", f"--config.file={self.dir}/prometheus.yml",
                           f"--storage.tsdb.path={self.dir}/data",
                           f"--web.listen-address=127.0.0.1:{self.port}"],
                          os.path.join(self.dir, "prometheus.log"))

    def api(self, path, **params):
        q = urllib.parse.urlencode(params)
        return http_get(f"http://127.0.0.1:{self.port}/api/v1/{path}?{q}")

    def query(self, expr):
        r = self.api("query", query=expr)
        return r.get("data", {}).get("result") if r.get("status") == "success" else None

    def stop(self):
        stop(self.proc)


# ---- the collectd hosts ----

def collectd_host(root, plugin_dir, name, block, graphite, influx, prom_port):
    e2e.HOST = name
    extra = f"""LoadPlugin load
<LoadPlugin write_graphite>
  FlushInterval 1
</LoadPlugin>
<Plugin write_graphite>
  <Node "carbon">
    Host "127.0.0.1"
    Port "{graphite.line_port}"
    Protocol "tcp"
    Prefix "collectd."
  </Node>
</Plugin>
LoadPlugin network
<Plugin network>
  Server "127.0.0.1" "{influx.udp_port}"
</Plugin>
LoadPlugin write_prometheus
<Plugin write_prometheus>
  Host "127.0.0.1"
  Port "{prom_port}"
</Plugin>
"""
    d = e2e.Collectd(root, "collectd-" + name, plugin_dir, block, extra)
    d.start()
    return d


def make_hosts(root, plugin_dir, graphite, influx, prom_ports):
    daemons = {}
    e2e.HOST = "e2e-host"
    ok = e2e.Cache(os.path.join(root, "ok"))
    daemons["e2e-host"] = collectd_host(
        root, plugin_dir, "e2e-host",
        f'  Config "{ok.config}"\n  PassInterval 2\n  LibvirtURI "{ok.libvirt_uri}"\n',
        graphite, influx, prom_ports[0])
    daemons["e2e-typo"] = collectd_host(root, plugin_dir, "e2e-typo",
                                        f'  Config "{ok.config}"\n  RemoveUnusd true\n',
                                        graphite, influx, prom_ports[1])
    e2e.HOST = "e2e-hung"
    hung = e2e.Cache(os.path.join(root, "hung"))
    hung.repair(hung.corrupt)  # only e2e-host has a corrupt file
    daemons["e2e-hung"] = collectd_host(
        root, plugin_dir, "e2e-hung",
        f'  Config "{hung.config}"\n  PassInterval 2\n  ChecksumRateLimit 1048576\n',
        graphite, influx, prom_ports[2])
    e2e.HOST = "e2e-failing"
    failing = e2e.Cache(os.path.join(root, "failing"))
    os.rename(failing.base, failing.base + ".real")
    os.symlink(failing.base + ".real", failing.base)  # refused: every pass fails
    daemons["e2e-failing"] = collectd_host(
        root, plugin_dir, "e2e-failing", f'  Config "{failing.config}"\n  PassInterval 2\n',
        graphite, influx, prom_ports[3])
    return daemons, hung


def hang(d, cache):
    """After the first pass: a file whose hashing takes minutes, so the next pass hangs."""
    wait_for(lambda: e2e.passes(d) >= 1, 15)
    big = cache.path(e2e.fingerprint("e2e-hang-image"))
    with open(big, "wb") as f:
        f.truncate(512 * 1024 * 1024)
    with open(big + ".sha1", "w") as f:
        f.write("0" * 40 + "\n")


# ---- dashboards and rules ----

def load(name):
    with open(os.path.join(GRAFANA, name), encoding="utf-8") as f:
        return json.load(f)


def panel_targets(dashboard, key):
    for p in dashboard["panels"]:
        for t in p.get("targets", []):
            if key in t:
                yield f"panel {p['id']} {p['title']!r} {t['refId']}", t[key]


def rules(kind):
    for g in load("alert-rules.json")["groups"]:
        for r in g["rules"]:
            data = {q["refId"]: q for q in r["data"]}
            a = data["A"]
            if kind not in a["datasourceUid"]:
                continue
            threshold = data["C"]["model"]["conditions"][0]["evaluator"]
            yield r, a, threshold


def fires(value, evaluator):
    limit = evaluator["params"][0]
    return value > limit if evaluator["type"] == "gt" else value < limit


def labels_used(rule):
    text = json.dumps(rule.get("annotations", {}))
    return set(re.findall(r"\$labels\.(\w+)", text))


def readme_blocks(lang):
    """The fenced code blocks of README.md with the info string @lang ('' for none)."""
    blocks, current = [], None
    with open(os.path.join(SOURCE_ROOT, "README.md"), encoding="utf-8") as f:
        for line in f:
            if line.startswith("```"):
                if current is None:
                    current = [] if line[3:].strip() == lang else False
                else:
                    if current is not False:
                        blocks.append("".join(current))
                    current = None
            elif current is not None and current is not False:
                current.append(line)
    return blocks


# ---- Graphite checks ----

def graphite_subst(target):
    return target.replace("$prefix", "collectd").replace("$host", "*").replace("$image", "*")


def check_graphite(graphite):
    dash = load("imagecache-graphite.json")
    for where, target in panel_targets(dash, "target"):
        series = graphite.render(graphite_subst(target))
        ok = isinstance(series, list) and any(
            any(v is not None for v, _ in s["datapoints"]) for s in series)
        check(ok, f"Graphite: {where} returns series with values", f"{target} -> {str(series)[:200]}")
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            found = graphite.find(graphite_subst(v["query"]))
            check(isinstance(found, list) and found, f"Graphite: variable ${v['name']} lists values",
                  str(found)[:200])
    # the README's examples: the path in each line of the block after "**Graphite**"
    examples = [re.split(r"\s{2,}", line)[0].replace("compute1", "e2e-host")
                for block in readme_blocks("") for line in block.splitlines()
                if line.startswith(("collectd.", "aliasByNode(collectd"))]
    check(examples, "README has Graphite examples")
    for target in examples:
        series = graphite.render(target)
        check(isinstance(series, list) and series, f"Graphite: README example {target} returns series",
              str(series)[:200])
    expected = {"imagecache-graphite-corrupt": {"e2e-host"},
                "imagecache-graphite-failed-passes": {"e2e-failing"},
                "imagecache-graphite-absent": {"e2e-typo", "e2e-hung"}}
    for rule, a, evaluator in rules("graphite"):
        # the absent rule looks at its whole window; the test's window starts once the
        # hung worker's last_pass stopped, so that e2e-hung shows (the rule's 10 min
        # window gets there 10 min later)
        frm = "-8s" if "absent" in rule["uid"] else f"-{a['relativeTimeRange']['from']}s"
        series = graphite.render(a["model"]["target"], frm)
        if not check(isinstance(series, list) and series, f"Graphite rule {rule['uid']}: returns series",
                     str(series)[:300]):
            continue
        firing = set()
        for s in series:
            values = [v for v, _ in s["datapoints"] if v is not None]
            if values and fires(values[-1], evaluator):
                firing.add(s["target"])
            # Grafana's labels for a Graphite series: its tags, with name = the series name
            have = set(s.get("tags", {})) | {"name"}
            missing = labels_used(rule) - have
            check(not missing, f"Graphite rule {rule['uid']}: annotation labels {sorted(labels_used(rule))} are set",
                  f"missing {missing}, series has {sorted(have)}")
        want = expected.get(rule["uid"])
        check(firing == want, f"Graphite rule {rule['uid']} fires for {sorted(want or [])}",
              f"fires for {sorted(firing)}")


# ---- InfluxDB checks ----

def influx_subst(query):
    return (query.replace("$timeFilter", "time > now() - 5m").replace("$__interval", "1s")
            .replace("/^$host$/", "/.*/").replace("/^$image$/", "/.*/"))


def influx_series(influx, query):
    # the HTTP API, unchunked: the CLI splits a long answer into chunks
    q = urllib.parse.urlencode({"db": "collectd", "q": query})
    result = http_get(f"http://127.0.0.1:{influx.http_port}/query?{q}")
    try:
        return result["results"][0].get("series") or []
    except (KeyError, IndexError):
        return []


def check_influx(influx):
    if not check(influx.ready(), "InfluxDB answers"):
        return
    fields = {}
    for m in ("imagecache_value", "imagecache_seconds"):
        rows = influx_series(influx, f'SHOW FIELD KEYS FROM "{m}"')
        fields[m] = sorted(v[0] for s in rows for v in s["values"])
    if os.environ.get("IMAGECACHE_REGEN"):
        with open(FIELDS_FILE, "w") as f:
            json.dump(fields, f, indent=2)
            f.write("\n")
    with open(FIELDS_FILE) as f:
        recorded = json.load(f)
    check(fields == recorded, f"InfluxDB field keys are those recorded in {os.path.relpath(FIELDS_FILE, SOURCE_ROOT)}",
          f"live {fields}, recorded {recorded}")
    dash = load("imagecache-influxdb.json")
    for where, query in panel_targets(dash, "query"):
        rows = influx_series(influx, influx_subst(query))
        ok = any(any(v[1] is not None for v in s["values"]) for s in rows)
        check(ok, f"InfluxDB: {where} returns data", influx_subst(query)[:300])
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            rows = influx_series(influx, influx_subst(v["query"]))
            check(rows, f"InfluxDB: variable ${v['name']} lists values", influx_subst(v["query"]))
    readme = [q.strip() for block in readme_blocks("sql") for q in re.split(r"\n(?=SELECT)", block)]
    check(readme, "README has InfluxQL examples")
    for query in readme:
        rows = influx_series(influx, " ".join(query.split()))
        check(any(s["values"] for s in rows), f"InfluxDB: README query returns data", query)
    expected = {"imagecache-influxdb-corrupt": {"e2e-host"},
                "imagecache-influxdb-failed-passes": {"e2e-failing"},
                "imagecache-influxdb-stale": {"e2e-hung"}}
    for rule, a, evaluator in rules("influx"):
        window = a["relativeTimeRange"]["from"]
        if "time(5m)" in a["model"]["query"]:
            window = 600  # the stale rule's day of 5-minute buckets, shrunk to the test's seconds
        query = a["model"]["query"].replace("$timeFilter", f"time > now() - {window}s")
        query = query.replace("time(5m)", "time(6s)")
        want = expected[rule["uid"]]

        def evaluate():
            rows = influx_series(influx, query)
            firing = set()
            for s in rows:
                values = [v[1] for v in s["values"] if v[1] is not None]
                if values and fires(values[-1], evaluator):
                    firing.add(s.get("tags", {}).get("host"))
            return rows, firing

        # Grafana evaluates a rule again and again; on a loaded machine the hung host's
        # last values can trail by a bucket, so evaluate until the answer is the wanted
        # one or 30 s have passed (then the last answer is what the check reports).
        answer = []

        def settled():
            answer[:] = [evaluate()]
            return answer[0][1] == want

        e2e.wait_for(settled, 30, step=1)
        rows, firing = answer[0]
        if not check(rows, f"InfluxDB rule {rule['uid']}: returns series", query):
            continue
        for s in rows:
            missing = labels_used(rule) - set(s.get("tags", {}))
            check(not missing, f"InfluxDB rule {rule['uid']}: annotation labels are tags", str(missing))
        check(firing == want, f"InfluxDB rule {rule['uid']} fires for {sorted(want)}",
              f"fires for {sorted(firing)}: " + "; ".join(
                  f"{s.get('tags')} {s['values'][-3:]} of {len(s['values'])}" for s in rows))


# ---- Prometheus checks ----

def check_prometheus(prom):
    out = subprocess.run(["promtool", "check", "rules", RULES_PROM], capture_output=True, text=True)
    check(out.returncode == 0, "promtool check rules", out.stdout + out.stderr)
    out = subprocess.run(["promtool", "test", "rules", "imagecache-rules.test.yml"],
                         cwd=os.path.join(HERE, "data", "prometheus"), capture_output=True, text=True)
    check(out.returncode == 0, "promtool test rules (corrupt, failing, absent, hung, stalled)",
          out.stdout + out.stderr)
    groups = wait_for(lambda: (prom.api("rules").get("data") or {}).get("groups"), 20)
    loaded = [r for g in groups or [] for r in g["rules"]]
    check(loaded and all(r.get("health") == "ok" for r in loaded),
          f"Prometheus loaded {len(loaded)} rules, each evaluated with health ok",
          str([(r.get('name'), r.get('health'), r.get('lastError')) for r in loaded]))
    dash = load("imagecache-prometheus.json")
    for where, expr in panel_targets(dash, "expr"):
        q = expr.replace('"$host"', '".*"').replace('"$image"', '".*"')
        result = prom.query(q)
        check(result, f"Prometheus: {where} returns series", q)
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            m = re.match(r"label_values\((.*), (\w+)\)$", v["definition"])
            result = prom.query(m.group(1).replace('"$host"', '".*"'))
            check(result and all(m.group(2) in r["metric"] for r in result),
                  f"Prometheus: variable ${v['name']} has values", v["definition"])
    expected = {"ImagecacheCorruptBaseFiles": {"e2e-host"}, "ImagecachePassesFailing": {"e2e-failing"},
                "ImagecacheAbsent": {"e2e-typo", "e2e-hung"}, "ImagecachePassStalled": set()}
    for r in loaded:
        # the absent rule's 300 s, shrunk to the test's seconds (the hung worker's
        # last_pass stopped some 10 s ago)
        query = r["query"].replace("time() - 300", "time() - 5")
        want = expected.get(r["name"])
        got = set()

        # Prometheus evaluates a rule again and again (and the absent rule must hold for
        # 5 min); on a loaded machine a host's newest load sample can trail by more than
        # the shrunk 5 s once, so evaluate until the answer is the wanted one or 30 s
        # have passed (then the last answer is what the check reports).
        def settled():
            got.clear()
            got.update(s["metric"].get("instance") for s in prom.query(query) or [])
            return got == want

        e2e.wait_for(settled, 30, step=1)
        ages = prom.query("time() - timestamp(collectd_load_shortterm)") or []
        check(got == want, f"Prometheus alert {r['name']} selects {sorted(want or [])}",
              f"selects {sorted(got)}; age of each host's newest load sample: " + ", ".join(
                  f"{s['metric'].get('instance')} {float(s['value'][1]):.1f} s" for s in ages))


def main():
    need = ["carbon-cache", "graphite-manage", "influxd", "influx", "prometheus", "promtool"]
    missing = [t for t in need if shutil.which(t) is None]
    if missing or not os.path.exists("/usr/lib/collectd/write_prometheus.so"):
        log(f"SKIP: missing {missing} (scripts/install-deps.sh --test installs graphite-carbon, "
            "graphite-web, influxdb, influxdb-client, prometheus)")
        return 77
    plugin_dir, root = e2e.setup("imagecache-e2e-backends-")
    if root is None:
        return plugin_dir
    started = time.monotonic()
    graphite = influx = prom = None
    daemons = {}
    try:
        graphite = Graphite(root)
        influx = e2e.Influx(root)
        prom_ports = [e2e.free_port() for _ in HOSTS]
        prom = Prometheus(root, prom_ports)
        if not check(graphite.ready(), "graphite-web answers on loopback",
                     e2e.read(os.path.join(graphite.dir, "web.log"))[-800:]):
            return 1
        daemons, hung = make_hosts(root, plugin_dir, graphite, influx, prom_ports)
        hang(daemons["e2e-hung"], hung)
        # the hung worker's last_pass stops 2 x PassInterval after its last finished pass
        time.sleep(14)
        check(e2e.passes(daemons["e2e-host"]) >= 3, "e2e-host ran passes")
        check_graphite(graphite)
        check_influx(influx)
        check_prometheus(prom)
    finally:
        for d in daemons.values():
            d.stop()
        for s in (prom, influx, graphite):
            if s:
                s.stop()
        e2e.cleanup(root)
    log(f"INFO: took {time.monotonic() - started:.1f} s")
    if e2e.failures:
        log(f"FAIL: {len(e2e.failures)} check(s) failed")
        return 1
    log("PASS: dashboards and rules against real Graphite, InfluxDB and Prometheus")
    return 0


if __name__ == "__main__":
    sys.exit(main())
