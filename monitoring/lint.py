#!/usr/bin/env python3
"""Offline checks of hoard's dashboards and rules against docs/metrics.md (Python 3, stdlib only).

    python3 monitoring/lint.py            # from anywhere; run by scripts/monitoring-check

Checks:
  dashboards  valid JSON; schemaVersion, unique uid; the ${DS_PROMETHEUS} datasource variable and
              every panel and target on it; unique panel ids; grid positions inside 24 columns and
              not overlapping; every panel has targets and every target a non-empty expr; template
              variables defined and used only with regex matchers (=~, !~), so that
              scripts/dashboard-queries can put `.*` in; every expr parses (promtool check rules
              on a generated file)
  rules       every alert has a severity (warning|critical), summary, description and runbook
              annotation, a promtool test case and a section in docs/auditor-guide.md
  metrics     every hoard_* name in a panel or rule is documented in docs/metrics.md (histogram
              series by their base name); every documented metric is used by a dashboard panel or
              an alert (through recording rules too); every hoard:* recording rule used exists;
              the alerts and panels named in its "used by" column exist

scripts/dashboard-queries imports the readers below (dashboards, panel_queries, substitute,
rule_exprs), so the live check and this one see the same queries.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MONITORING = ROOT / "monitoring"
DASHBOARDS = MONITORING / "dashboards"
RULES = MONITORING / "rules"
TESTS = MONITORING / "tests"
METRICS_DOC = ROOT / "docs" / "metrics.md"
GUIDE_DOC = ROOT / "docs" / "auditor-guide.md"

DS_UID = "${DS_PROMETHEUS}"
# Grafana's built-in variables and what a query gets for them outside Grafana.
BUILTINS = {
    "__rate_interval": "30s",
    "__interval": "15s",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
    "__interval_ms": "15000",
}
VAR_RE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")
METRIC_RE = re.compile(r"(?<![\w:])hoard_\w+")
RECORD_RE = re.compile(r"(?<![\w:])hoard:[\w:]+")
STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


# ---- readers (shared with scripts/dashboard-queries) ----


def dashboards(folder: Path = DASHBOARDS) -> dict[Path, dict]:
    """Every dashboard JSON file in `folder`, parsed. Raises ValueError naming a bad file."""
    out = {}
    for path in sorted(folder.glob("*.json")):
        try:
            out[path] = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON: {e}") from e
    return out


def all_panels(dashboard: dict) -> list[dict]:
    """Panels, including those nested in collapsed rows."""
    out = []
    for p in dashboard.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def panel_queries(dashboard: dict):
    """(panel, target) for every target of every non-row panel."""
    for p in all_panels(dashboard):
        if p.get("type") == "row":
            continue
        for t in p.get("targets", []):
            yield p, t


def substitute(expr: str, values: dict[str, str] | None = None) -> str:
    """Replaces Grafana variables by `values`, else built-ins by fixed durations (BUILTINS) and
    template variables by `.*` (every dashboard variable is used with a regex matcher)."""
    values = values or {}

    def repl(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        if name in values:
            return values[name]
        return BUILTINS.get(name, ".*")

    return VAR_RE.sub(repl, expr)


def rule_exprs(path: Path) -> list[dict]:
    """Rules of a Prometheus rule file: [{"kind": "alert"|"record", "name", "expr", "line",
    "labels": {...}, "annotations": {...}}]. A small reader for the block style of our rule files
    (PyYAML is not in the standard library); `check_rules` compares its count with promtool's."""
    lines = path.read_text().splitlines()
    rules: list[dict] = []
    i = 0

    def scalar(i: int, indent: int, first: str) -> tuple[str, int]:
        """Value of a key whose text after the colon is `first`; returns (value, next line)."""
        first = first.strip()
        block = first[:1] in ("|", ">")
        parts = [] if block else [first]
        j = i + 1
        while j < len(lines):
            ln = lines[j]
            if ln.strip() and (len(ln) - len(ln.lstrip())) <= indent:
                break
            parts.append(ln.strip())
            j += 1
        sep = "\n" if first.startswith("|") else " "
        value = sep.join(p for p in parts if p or sep == "\n").strip()
        if not block and len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        return value, j

    section = None
    while i < len(lines):
        ln = lines[i]
        m = re.match(r"^(\s*)(- )?(\w+):\s*(.*)$", ln)
        if not m or ln.lstrip().startswith("#"):
            i += 1
            continue
        indent = len(m.group(1)) + (2 if m.group(2) else 0)
        key, rest = m.group(3), m.group(4)
        if key in ("alert", "record") and m.group(2):
            rules.append({"kind": key, "name": rest.strip().strip("'\""), "line": i + 1,
                          "labels": {}, "annotations": {}, "expr": ""})
            section = None
            i += 1
        elif key == "expr" and rules:
            rules[-1]["expr"], i = scalar(i, indent, rest)
        elif key in ("labels", "annotations") and rules and not rest.strip():
            section, section_indent = key, indent
            i += 1
        elif section and rules and indent > section_indent:
            rules[-1][section][key], i = scalar(i, indent, rest)
        else:
            section = None
            i += 1
    return rules


def all_rules(folder: Path = RULES) -> dict[Path, list[dict]]:
    return {p: rule_exprs(p) for p in sorted(folder.glob("*.yml"))}


def strip_strings(expr: str) -> str:
    return STRING_RE.sub('""', expr)


def metric_names(expr: str) -> set[str]:
    return set(METRIC_RE.findall(strip_strings(expr)))


def recording_names(expr: str) -> set[str]:
    return set(RECORD_RE.findall(strip_strings(expr)))


def documented_metrics(path: Path = METRICS_DOC) -> dict[str, str]:
    """{name: type} from the tables of docs/metrics.md (rows starting with | `hoard_…` | type |)."""
    out = {}
    for ln in path.read_text().splitlines():
        m = re.match(r"^\|\s*`(hoard_\w+)`\s*\|\s*(\w+)\s*\|", ln)
        if m:
            out[m.group(1)] = m.group(2)
    return out


# ---- checks ----


class Lint:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def err(self, msg: str) -> None:
        self.errors.append(msg)


def check_dashboards(lint: Lint, dashes: dict[Path, dict]) -> list[tuple[str, str]]:
    """Structural checks; returns [(where, expr)] for the PromQL and metric checks."""
    exprs = []
    uids: dict[str, Path] = {}
    for path, d in dashes.items():
        name = path.relative_to(ROOT)
        if not isinstance(d.get("schemaVersion"), int) or d["schemaVersion"] < 36:
            lint.err(f"{name}: schemaVersion missing or older than 36")
        uid = d.get("uid")
        if not uid:
            lint.err(f"{name}: no uid")
        elif uid in uids:
            lint.err(f"{name}: uid {uid!r} also used by {uids[uid].name}")
        else:
            uids[uid] = path
        variables = {v.get("name"): v for v in d.get("templating", {}).get("list", [])}
        ds = variables.get("DS_PROMETHEUS")
        if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
            lint.err(f"{name}: no datasource variable DS_PROMETHEUS of type prometheus")
        for vname, v in variables.items():
            if v.get("type") == "query":
                if v.get("datasource", {}).get("uid") != DS_UID:
                    lint.err(f"{name}: variable {vname} does not use {DS_UID}")
                q = v.get("query")
                q = q.get("query") if isinstance(q, dict) else q
                if not q:
                    lint.err(f"{name}: variable {vname} has no query")
        ids: dict[int, str] = {}
        cells: dict[tuple[int, int], str] = {}
        panels = all_panels(d)
        if not panels:
            lint.err(f"{name}: no panels")
        for p in panels:
            title = p.get("title", "?")
            where = f"{name}: panel {p.get('id')} {title!r}"
            pid = p.get("id")
            if not isinstance(pid, int):
                lint.err(f"{where}: id missing or not an integer")
            elif pid in ids:
                lint.err(f"{where}: id {pid} also used by {ids[pid]!r}")
            else:
                ids[pid] = title
            g = p.get("gridPos", {})
            if not all(isinstance(g.get(k), int) for k in "hwxy"):
                lint.err(f"{where}: gridPos needs integer h, w, x, y")
            else:
                if g["x"] < 0 or g["w"] <= 0 or g["x"] + g["w"] > 24:
                    lint.err(f"{where}: gridPos outside the 24 columns")
                for x in range(g["x"], g["x"] + g["w"]):
                    for y in range(g["y"], g["y"] + g["h"]):
                        if (x, y) in cells and p.get("type") != "row":
                            lint.err(f"{where}: overlaps panel {cells[(x, y)]!r}")
                            break
                        cells[(x, y)] = title
                    else:
                        continue
                    break
            if p.get("type") == "row":
                continue
            if p.get("datasource", {}).get("uid") != DS_UID:
                lint.err(f"{where}: datasource is not {DS_UID}")
            targets = p.get("targets") or []
            if not targets:
                lint.err(f"{where}: no targets")
            for t in targets:
                expr = (t.get("expr") or "").strip()
                twhere = f"{where} target {t.get('refId', '?')}"
                if not expr:
                    lint.err(f"{twhere}: empty expr")
                    continue
                if t.get("datasource", {}).get("uid") != DS_UID:
                    lint.err(f"{twhere}: datasource is not {DS_UID}")
                for m in VAR_RE.finditer(expr):
                    vname = m.group(1) or m.group(2)
                    if vname in BUILTINS:
                        continue
                    if vname not in variables:
                        lint.err(f"{twhere}: uses ${vname}, which the dashboard does not define")
                    before = expr[: m.start()].rstrip()
                    if not (before.endswith('=~"') or before.endswith('!~"')):
                        lint.err(f"{twhere}: ${vname} must be used as a regex matcher (label=~\"${vname}\")")
                exprs.append((twhere, expr))
    return exprs


def promtool_parse(lint: Lint, exprs: list[tuple[str, str]]) -> None:
    """Parses every dashboard expr with promtool, as recording rules in a temporary file."""
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "dashboard_exprs.yml"
        body = ["groups:"]
        for n, (_, expr) in enumerate(exprs):
            body += [f"  - name: q{n}", "    rules:", f"      - record: dashboard:q{n}",
                     f"        expr: {json.dumps(substitute(expr))}"]
        f.write_text("\n".join(body) + "\n")
        r = subprocess.run(["promtool", "check", "rules", str(f)], capture_output=True, text=True)
        if r.returncode != 0:
            out = r.stdout + r.stderr
            bad = {int(n) for n in re.findall(r'group "q(\d+)"', out)}
            for n in sorted(bad):
                lint.err(f"{exprs[n][0]}: PromQL does not parse: {exprs[n][1]}")
            if not bad:
                lint.err(f"promtool could not check the dashboard exprs:\n{out}")


def check_rules(lint: Lint, rules: dict[Path, list[dict]]) -> None:
    tests = "\n".join(p.read_text() for p in sorted(TESTS.glob("*.yml")))
    tested = set(re.findall(r"alertname:\s*(\w+)", tests))
    guide = GUIDE_DOC.read_text() if GUIDE_DOC.exists() else ""
    sections = set(re.findall(r"^#+\s+(\w+)\s*$", guide, re.M))
    if not GUIDE_DOC.exists():
        lint.err(f"{GUIDE_DOC.relative_to(ROOT)} is missing")
    for path, rs in rules.items():
        name = path.relative_to(ROOT)
        r = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True)
        m = re.search(r"SUCCESS: (\d+) rules found", r.stdout)
        if m and int(m.group(1)) != len(rs):
            lint.err(f"{name}: read {len(rs)} rules but promtool finds {m.group(1)}; "
                     "monitoring/lint.py cannot read this file's layout")
        for rule in rs:
            where = f"{name}:{rule['line']}: {rule['kind']} {rule['name']}"
            if not rule["expr"]:
                lint.err(f"{where}: no expr read")
            if rule["kind"] != "alert":
                continue
            if rule["labels"].get("severity") not in ("warning", "critical"):
                lint.err(f"{where}: severity label must be warning or critical")
            for a in ("summary", "description", "runbook"):
                if not rule["annotations"].get(a):
                    lint.err(f"{where}: no {a} annotation")
            if rule["name"] not in tested:
                lint.err(f"{where}: no promtool test case in monitoring/tests/ (alertname: {rule['name']})")
            if rule["name"] not in sections:
                lint.err(f"{where}: no section '### {rule['name']}' in docs/auditor-guide.md")
            runbook = rule["annotations"].get("runbook", "")
            if runbook and runbook != f"docs/auditor-guide.md#{rule['name'].lower()}":
                lint.err(f"{where}: runbook should be docs/auditor-guide.md#{rule['name'].lower()}")


def check_metrics(lint: Lint, dash_exprs: list[tuple[str, str]], rules: dict[Path, list[dict]]) -> None:
    if not METRICS_DOC.exists():
        lint.err(f"{METRICS_DOC.relative_to(ROOT)} is missing")
        return
    doc = documented_metrics()
    for n, t in doc.items():
        if t not in ("counter", "gauge", "histogram"):
            lint.err(f"docs/metrics.md: {n} has type {t!r}; use counter, gauge or histogram")
        if t == "counter" and not n.endswith("_total"):
            lint.err(f"docs/metrics.md: counter {n} should end in _total")

    def base(name: str) -> str:
        for s in HISTOGRAM_SUFFIXES:
            if name.endswith(s) and doc.get(name[: -len(s)]) == "histogram":
                return name[: -len(s)]
        return name

    records = {r["name"]: r["expr"] for rs in rules.values() for r in rs if r["kind"] == "record"}

    def expand(expr: str, seen: frozenset = frozenset()) -> set[str]:
        names = {base(n) for n in metric_names(expr)}
        for rec in recording_names(expr):
            if rec in records and rec not in seen:
                names |= expand(records[rec], seen | {rec})
        return names

    used = set()
    everything = list(dash_exprs)
    for path, rs in rules.items():
        for r in rs:
            everything.append((f"{path.relative_to(ROOT)}:{r['line']}: {r['kind']} {r['name']}", r["expr"]))
    for where, expr in everything:
        for rec in recording_names(expr):
            if rec not in records:
                lint.err(f"{where}: recording rule {rec} is not defined in monitoring/rules/")
        for n in {base(n) for n in metric_names(expr)}:
            if n not in doc:
                lint.err(f"{where}: metric {n} is not documented in docs/metrics.md")
    for _, expr in dash_exprs:
        used |= expand(expr)
    for rs in rules.values():
        for r in rs:
            if r["kind"] == "alert":
                used |= expand(r["expr"])
    for n in sorted(set(doc) - used):
        lint.err(f"docs/metrics.md: {n} is used by no dashboard panel and no alert")
    check_used_by_column(lint, rules)


def check_used_by_column(lint: Lint, rules: dict[Path, list[dict]]) -> None:
    """The last column of docs/metrics.md names alerts (`alert X`, `alerts X, Y`) and panels
    (`host: *Title*`, `auditor: *Title*`, a title's beginning is enough): they must exist."""
    alerts = {r["name"] for rs in rules.values() for r in rs if r["kind"] == "alert"}
    titles = {}
    for path, d in dashboards().items():
        key = {"host-operator.json": "host", "auditor.json": "auditor"}.get(path.name, path.stem)
        titles[key] = [p.get("title", "") for p in all_panels(d)]
    for ln in METRICS_DOC.read_text().splitlines():
        m = re.match(r"^\|\s*`([\w:]+)`\s*\|.*\|\s*([^|]*?)\s*\|\s*$", ln)
        if not m:
            continue
        name, used_by = m.groups()
        for part in used_by.split(";"):
            part = part.strip()
            am = re.match(r"^alerts? (.+)$", part)
            if am:
                for a in re.split(r",\s*", am.group(1)):
                    if a not in alerts:
                        lint.err(f"docs/metrics.md: {name} names alert {a}, which is not defined")
                continue
            pm = re.match(r"^(\w+): (.+)$", part)
            if not pm:
                continue
            board, names = pm.groups()
            if board not in titles:
                lint.err(f"docs/metrics.md: {name} names dashboard {board!r}, which does not exist")
                continue
            for t in re.findall(r"\*([^*]+)\*", names):
                if not any(title.startswith(t) for title in titles[board]):
                    lint.err(f"docs/metrics.md: {name} names panel {t!r}, not a panel of the {board} dashboard")


def main() -> int:
    lint = Lint()
    try:
        dashes = dashboards()
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if not dashes:
        lint.err(f"no dashboards in {DASHBOARDS.relative_to(ROOT)}")
    exprs = check_dashboards(lint, dashes)
    if exprs:
        promtool_parse(lint, exprs)
    rules = all_rules()
    check_rules(lint, rules)
    check_metrics(lint, exprs, rules)
    if lint.errors:
        for e in lint.errors:
            print(f"error: {e}", file=sys.stderr)
        print(f"{len(lint.errors)} problem(s) in dashboards, rules or docs/metrics.md", file=sys.stderr)
        return 1
    n_rules = sum(len(rs) for rs in rules.values())
    print(f"dashboards: {len(dashes)} files, {len(exprs)} queries; rules: {n_rules}; "
          f"metrics documented: {len(documented_metrics())}; all consistent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
