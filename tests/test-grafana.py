#!/usr/bin/env python3
"""Checks contrib/grafana/*.json against what Grafana needs to import them (issue 8).

No Grafana server is available to import into (Debian 12 has no grafana package), so
this checks the structure Grafana's dashboard schema (schemaVersion 38) and alert-rule
provisioning (apiVersion 1) require, and that every metric a query names is one the
collectd plugin sends (issue 4's list, cross-checked with common/metrics.c):

  dashboards: uid/title/schemaVersion/panels/templating; each panel with a unique id, a
  known type, a gridPos inside the 24-column grid that overlaps no other panel, a
  datasource of the dashboard's type, targets with unique refIds; Graphite targets name
  <prefix>.<host>.imagecache[-<file>].<type>[-<type_instance>] paths, InfluxQL queries the
  imagecache_value/imagecache_seconds measurements with type/type_instance tags.
  alert rules: groups with rules (uid, title, condition naming one of its refIds, data
  with datasourceUid and relativeTimeRange, states, for), the same metric checks.

Usage: test-grafana.py [SOURCE_ROOT]   (exit 0 pass, 1 fail)
"""
import json
import os
import re
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Issue 4: (per_image, type, type_instance). types.db: duration's data source is "seconds".
PER_IMAGE = {("bytes", ""), ("duration", "age"), ("count", "local_users"),
             ("count", "remote_users"), ("gauge", "corrupt"), ("gauge", "in_use")}
TOTALS = {("count", t) for t in ("images", "active", "removable", "too_young", "corrupt",
                                 "removed", "ledger_hosts", "ledger_stale_hosts",
                                 "failed_passes")} | \
         {("bytes", t) for t in ("total", "active", "removable", "reclaimed")} | \
         {("duration", "pass"), ("timestamp", "last_pass")} | \
         {("count", t) for t in ("absent", "kept", "pinned", "quarantined")} | \
         {("bytes", "quarantined")}  # issue 6
TYPES_DB = "/usr/share/collectd/types.db"


def types_db_sources():
    """type -> its one data source name, from collectd's types.db (InfluxDB's collectd
    input names the measurement <plugin>_<data source>)."""
    sources = {}
    if os.path.exists(TYPES_DB):
        with open(TYPES_DB, encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2 and not parts[0].startswith("#"):
                    sources[parts[0]] = parts[1].split(":")[0]
    return sources


# The measurement of each type: from types.db where installed, else the stock names.
_SOURCES = types_db_sources()
MEASUREMENT = {t: "imagecache_" + _SOURCES.get(t, "seconds" if t == "duration" else "value")
               for t in ("bytes", "count", "gauge", "timestamp", "duration")}
# The field names, as a real InfluxDB showed them (SHOW FIELD KEYS), recorded by
# tests/e2e-backends.py, which fails when the live names differ from this file.
with open(os.path.join(ROOT, "tests", "data", "grafana", "influxdb-fields.json"), encoding="utf-8") as f:
    FIELDS = json.load(f)
FIELD = {m: names[0] for m, names in FIELDS.items() if len(names) == 1}
PANEL_TYPES = {"timeseries", "stat", "table", "bargauge", "gauge", "text", "row", "piechart",
               "state-timeline", "status-history", "heatmap", "barchart"}
UID_RE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")

errors = []
checked_metrics = set()


def fail(where, message):
    errors.append(f"{where}: {message}")


def code_metrics():
    """The (per_image, type, type_instance) the plugin's metric set builds, from its source."""
    path = os.path.join(ROOT, "common", "metrics.c")
    if not os.path.exists(path):
        return None
    found = set()
    with open(path, encoding="utf-8") as f:
        for m in re.finditer(r'add_metric\(set, (name|""), "(\w+)", "(\w*)"', f.read()):
            found.add((m.group(1) == "name", m.group(2), m.group(3)))
    # The totals' values come from report.c's table: COUNT rows are type "count",
    # BYTES rows type "bytes", each under its .metric (none without one).
    with open(os.path.join(ROOT, "common", "report.c"), encoding="utf-8") as f:
        report = f.read()
    table = re.search(r"totals_info\[\] = \{(.*?)\n\};", report, re.S)
    if table:
        for row in re.split(r"\n    \{", table.group(1)):
            unit = re.search(r"(COUNT|BYTES)\(", row)
            metric = re.search(r'\.metric = "(\w+)"', row)
            if unit and metric:
                found.add((False, "count" if unit.group(1) == "COUNT" else "bytes", metric.group(1)))
    return found


def check_metric(where, per_image, mtype, tinst):
    known = PER_IMAGE if per_image else TOTALS
    what = f"{'per-image' if per_image else 'total'} {mtype}{'-' + tinst if tinst else ''}"
    if (mtype, tinst) not in known:
        fail(where, f"{what} is not a metric of the imagecache plugin")
    checked_metrics.add((per_image, mtype, tinst))


GRAPHITE_PATH = re.compile(r"\.imagecache(-\*|-\$image|-[0-9a-f_]+)?\.(\{[^}]*\}|[a-z_]+(?:-[a-z_]+)?)")


def check_graphite(where, target):
    if "imagecache" not in target:
        if "timeFunction" not in target:
            fail(where, f"target names no imagecache metric: {target}")
        return
    paths = list(GRAPHITE_PATH.finditer(target))
    if not paths:
        fail(where, f"no <host>.imagecache[-<file>].<type>[-<instance>] path in: {target}")
    for m in paths:
        per_image = m.group(1) is not None
        prefix = target[:m.start()]
        if not re.search(r"(\$prefix|collectd)\.(\$host|\*)$", prefix):
            fail(where, f"path does not start <prefix>.<host>: {target}")
        leaves = m.group(2)
        leaves = leaves[1:-1].split(",") if leaves.startswith("{") else [leaves]
        for leaf in leaves:
            mtype, _, tinst = leaf.partition("-")
            check_metric(where, per_image, mtype, tinst)


INFLUX_FROM = re.compile(r'SELECT\s+(.*?)\s+FROM\s+"(\w+)"\s+WHERE\s+(.*?)(?:\s+GROUP BY\s+(.*))?$', re.S)


def check_influx(where, query):
    m = INFLUX_FROM.match(query.strip())
    if not m:
        fail(where, f"not a SELECT … FROM \"measurement\" WHERE … query: {query}")
        return
    select, measurement, cond, group = m.groups()
    if measurement not in FIELD:
        fail(where, f"measurement {measurement} is not imagecache_value or imagecache_seconds")
        return
    if f'"{FIELD[measurement]}"' not in select:
        fail(where, f"{measurement} has field \"{FIELD[measurement]}\", the query selects {select}")
    if "$timeFilter" not in cond:
        fail(where, "query without $timeFilter")
    t = re.search(r"\"type\" = '(\w+)'", cond)
    ti = re.search(r"\"type_instance\" = '(\w*)'", cond)
    if not t or not ti:
        fail(where, f"query does not pin type and type_instance: {query}")
        return
    if MEASUREMENT.get(t.group(1)) != measurement:
        fail(where, f"type {t.group(1)} lives in {MEASUREMENT.get(t.group(1))}, not {measurement}")
    per_image = "\"instance\" = ''" not in cond
    if per_image and "instance" not in (group or ""):
        fail(where, "per-image query not grouped by instance")
    check_metric(where, per_image, t.group(1), ti.group(1))


# write_prometheus: collectd_<plugin>_<type>[_<unit>], label imagecache = the plugin
# instance (per file, with type = the type instance) or, for totals, the type instance.
PROM_TYPE = {"bytes": "bytes", "count": "count", "duration_seconds": "duration", "gauge": "gauge",
             "timestamp": "timestamp"}
PROM_SELECTOR = re.compile(r'collectd_imagecache_(\w+?)\{((?:[^}"]|"[^"]*")*)\}')


def check_promql(where, expr):
    selectors = list(PROM_SELECTOR.finditer(expr))
    if not selectors:
        fail(where, f"no collectd_imagecache_<type>{{...}} selector in: {expr}")
    for m in selectors:
        mtype = PROM_TYPE.get(m.group(1))
        if mtype is None:
            fail(where, f"collectd_imagecache_{m.group(1)} is no type of the plugin")
            continue
        labels = dict(re.findall(r'(\w+)=~?"([^"]*)"', m.group(2)))
        if "type" in labels or "$image" in m.group(2):
            check_metric(where, True, mtype, labels.get("type", ""))
        else:
            for tinst in labels.get("imagecache", "").split("|"):
                check_metric(where, False, mtype, tinst)


def check_dashboard(path, kind):
    where = os.path.relpath(path, ROOT)
    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    for key, typ in (("uid", str), ("title", str), ("schemaVersion", int), ("panels", list),
                     ("templating", dict), ("time", dict), ("version", int)):
        if not isinstance(d.get(key), typ):
            fail(where, f"top-level {key} missing or not {typ.__name__}")
    if errors:
        return
    if not UID_RE.match(d["uid"]):
        fail(where, f"uid {d['uid']!r}: 1-40 of [A-Za-z0-9_-]")
    if d["schemaVersion"] < 36:
        fail(where, "schemaVersion < 36: panel datasources as {type, uid} need 36+")
    if "id" in d and d["id"] is not None:
        fail(where, "an exported dashboard must have id null or absent (import assigns it)")
    variables = {}
    for v in d["templating"].get("list", []):
        if not isinstance(v.get("name"), str) or "type" not in v:
            fail(where, f"template variable without name/type: {v}")
            continue
        variables[v["name"]] = v
    ds_var = variables.get("datasource")
    if not ds_var or ds_var["type"] != "datasource" or ds_var.get("query") != kind:
        fail(where, f"needs a 'datasource' variable of type datasource for {kind}")
    for v in variables.values():
        if v["type"] == "query" and v.get("datasource", {}).get("type") != kind:
            fail(where, f"variable {v['name']} queries a non-{kind} datasource")

    ids, boxes, seen_corrupt = set(), [], False
    for p in d["panels"]:
        pw = f"{where}: panel {p.get('id')} {p.get('title')!r}"
        if not isinstance(p.get("id"), int) or p["id"] in ids:
            fail(pw, "id missing or not unique")
        ids.add(p.get("id"))
        if p.get("type") not in PANEL_TYPES:
            fail(pw, f"unknown panel type {p.get('type')!r}")
        if not p.get("title"):
            fail(pw, "no title")
        gp = p.get("gridPos", {})
        if not all(isinstance(gp.get(k), int) for k in "xywh"):
            fail(pw, "gridPos needs integer x, y, w, h")
            continue
        if gp["w"] < 1 or gp["h"] < 1 or gp["x"] < 0 or gp["y"] < 0 or gp["x"] + gp["w"] > 24:
            fail(pw, f"gridPos {gp} outside the 24-column grid")
        for other, ob in boxes:
            if (gp["x"] < ob["x"] + ob["w"] and ob["x"] < gp["x"] + gp["w"] and
                    gp["y"] < ob["y"] + ob["h"] and ob["y"] < gp["y"] + gp["h"]):
                fail(pw, f"overlaps panel {other}")
        boxes.append((p.get("id"), gp))
        if p["type"] in ("row", "text"):
            continue
        ds = p.get("datasource", {})
        if ds.get("type") != kind or ds.get("uid") != "${datasource}":
            fail(pw, f"datasource {ds} is not {{type: {kind}, uid: ${{datasource}}}}")
        targets = p.get("targets")
        if not targets:
            fail(pw, "no targets")
            continue
        refs = [t.get("refId") for t in targets]
        if None in refs or len(set(refs)) != len(refs):
            fail(pw, f"refIds missing or repeated: {refs}")
        if not isinstance(p.get("fieldConfig", {}).get("defaults"), dict):
            fail(pw, "fieldConfig.defaults missing")
        for t in targets:
            tw = f"{pw} target {t.get('refId')}"
            if kind == "graphite":
                if not isinstance(t.get("target"), str):
                    fail(tw, "Graphite target without 'target'")
                    continue
                check_graphite(tw, t["target"])
            elif kind == "prometheus":
                if not isinstance(t.get("expr"), str):
                    fail(tw, "Prometheus target without 'expr'")
                    continue
                check_promql(tw, t["expr"])
            else:
                if not isinstance(t.get("query"), str) or t.get("rawQuery") is not True:
                    fail(tw, "InfluxDB target without raw 'query'")
                    continue
                check_influx(tw, t["query"])
            seen_corrupt |= "corrupt" in json.dumps(t)
    needed = ["bytes-total", "bytes-removable", "duration-age", "local_users", "corrupt", "duration-pass"]
    text = json.dumps(d).replace("\"type\" = 'bytes' AND \"type_instance\" = 'total'", "bytes-total")
    text = text.replace("'bytes' AND \"type_instance\" = 'removable'", "bytes-removable")
    text = text.replace("'duration' AND \"type_instance\" = 'age'", "duration-age")
    text = text.replace("'duration' AND \"type_instance\" = 'pass'", "duration-pass")
    for n in needed:
        if n not in text:
            fail(where, f"no panel shows {n} (issue 8 asks for it)")


def check_alert_rules(path):
    where = os.path.relpath(path, ROOT)
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    if doc.get("apiVersion") != 1 or not isinstance(doc.get("groups"), list) or not doc["groups"]:
        fail(where, "needs apiVersion 1 and a non-empty groups list")
        return
    uids, conditions = set(), set()
    for g in doc["groups"]:
        for key in ("orgId", "name", "folder", "interval", "rules"):
            if key not in g:
                fail(where, f"group without {key}")
        if not re.match(r"^\d+[smh]$", str(g.get("interval", ""))):
            fail(where, f"group interval {g.get('interval')!r} is not a duration")
        for r in g.get("rules", []):
            rw = f"{where}: rule {r.get('uid')}"
            for key in ("uid", "title", "condition", "data", "noDataState", "execErrState", "for"):
                if key not in r:
                    fail(rw, f"missing {key}")
            if r.get("uid") in uids or not UID_RE.match(str(r.get("uid"))):
                fail(rw, "uid repeated or invalid")
            uids.add(r.get("uid"))
            if r.get("noDataState") not in ("NoData", "Alerting", "OK"):
                fail(rw, f"noDataState {r.get('noDataState')}")
            if r.get("execErrState") not in ("Error", "Alerting", "OK"):
                fail(rw, f"execErrState {r.get('execErrState')}")
            refs = {}
            for q in r.get("data", []):
                if "refId" not in q or "datasourceUid" not in q or "model" not in q:
                    fail(rw, "query without refId/datasourceUid/model")
                    continue
                if "relativeTimeRange" not in q:
                    fail(rw, f"query {q['refId']} without relativeTimeRange")
                refs[q["refId"]] = q
            if r.get("condition") not in refs:
                fail(rw, f"condition {r.get('condition')} is none of its refIds {sorted(refs)}")
            for ref, q in refs.items():
                model = q["model"]
                qw = f"{rw} query {ref}"
                if q["datasourceUid"] == "__expr__":
                    if model.get("type") not in ("math", "reduce", "threshold", "resample", "classic_conditions"):
                        fail(qw, f"expression type {model.get('type')}")
                    src = model.get("expression", "")
                    for used in re.findall(r"\$?([A-Z])\b", src):
                        if used not in refs:
                            fail(qw, f"expression refers to unknown refId {used}")
                elif "graphite" in q["datasourceUid"]:
                    check_graphite(qw, model.get("target", ""))
                elif "influx" in q["datasourceUid"]:
                    check_influx(qw, model.get("query", ""))
                else:
                    fail(qw, f"datasource {q['datasourceUid']} is neither Graphite nor InfluxDB")
            text = json.dumps(r)
            if "corrupt" in text:
                conditions.add("corrupt")
            if "last_pass" in text:
                conditions.add("last_pass")
            if "failed_passes" in text:
                conditions.add("failed_passes")
    for c in ("corrupt", "last_pass", "failed_passes"):
        if c not in conditions:
            fail(where, f"no rule on {c}")


def main():
    check_dashboard(os.path.join(ROOT, "contrib/grafana/imagecache-graphite.json"), "graphite")
    check_dashboard(os.path.join(ROOT, "contrib/grafana/imagecache-influxdb.json"), "influxdb")
    check_dashboard(os.path.join(ROOT, "contrib/grafana/imagecache-prometheus.json"), "prometheus")
    check_alert_rules(os.path.join(ROOT, "contrib/grafana/alert-rules.json"))
    from_code = code_metrics()
    if from_code is not None:
        for m in sorted(checked_metrics - from_code):
            fail("common/metrics.c", f"does not build {m}, which a dashboard or rule uses")
        spec = {(True, t, i) for t, i in PER_IMAGE} | {(False, t, i) for t, i in TOTALS}
        if from_code != spec:
            fail("common/metrics.c", f"metric set differs from issue 4: {sorted(from_code ^ spec)}")
    for e in errors:
        print("FAIL:", e)
    print(f"{'FAIL' if errors else 'PASS'}: {len(checked_metrics)} distinct metrics referenced, "
          f"{len(errors)} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
