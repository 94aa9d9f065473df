"""Prometheus rules and Grafana dashboards: valid for promtool, and only about real metrics.

Every PromQL expression in deploy/ (recording rules, alerts, dashboard panels, annotations,
template variables) must name only series that Vigie exports (pipeline/metrics.py), that a
recording rule defines, or that Prometheus itself makes (`up`). A renamed metric breaks
this test instead of silently emptying a panel.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import Counter, Histogram

from pipeline import metrics

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
GRAFANA = ROOT / "deploy" / "grafana"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))

# Series Prometheus makes itself for every target.
PROMETHEUS_SERIES = {"up"}

# PromQL words that look like identifiers but are not series names.
PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}

# What Grafana substitutes before sending a query; values only need to be valid PromQL.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$__range": "1h",
    "$brand": "acme",
}


def promql_metric_names(expr: str) -> set[str]:
    """Series names an expression selects (functions, labels and keywords left out)."""
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    text = re.sub(r"'(?:\\.|[^'\\])*'", "''", text)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range and subquery selectors
    # Label lists of aggregations and vector matching: sum by (brand), on (), group_left(x).
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.$:])([A-Za-z_:][\w:]*)(\s*\()?", text):
        name, is_call = match.group(1), match.group(2)
        if is_call or name.lower() in PROMQL_WORDS:
            continue
        names.add(name)
    return names


def exported_series() -> set[str]:
    names = set()
    for metric in metrics.all_metrics():
        if isinstance(metric, Counter):
            names.add(metric._name + "_total")
        elif isinstance(metric, Histogram):
            names.update(metric._name + suffix for suffix in ("_bucket", "_sum", "_count"))
        else:
            names.add(metric._name)
    return names


def rule_groups() -> list[dict[str, Any]]:
    groups = []
    for path in RULE_FILES:
        groups.extend(yaml.safe_load(path.read_text())["groups"])
    return groups


def recorded_series() -> set[str]:
    return {
        rule["record"] for group in rule_groups() for rule in group["rules"] if "record" in rule
    }


def rule_expressions() -> list[tuple[str, str]]:
    return [
        (rule.get("record") or rule["alert"], rule["expr"])
        for group in rule_groups()
        for rule in group["rules"]
    ]


def load_dashboard(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def dashboard_expressions() -> list[tuple[str, str]]:
    """(where, expr) for every PromQL expression in every dashboard."""
    found = []
    for path in DASHBOARDS:
        dashboard = load_dashboard(path)
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                found.append((f"{path.name}: {panel['title']}", target["expr"]))
        for annotation in dashboard["annotations"]["list"]:
            if "expr" in annotation:
                found.append((f"{path.name}: annotation {annotation['name']}", annotation["expr"]))
        for variable in dashboard["templating"]["list"]:
            if variable.get("type") == "query":
                query = variable["definition"]
                inner = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
                assert inner, f"{path.name}: unexpected variable query {query!r}"
                found.append((f"{path.name}: variable {variable['name']}", inner.group(1)))
    return found


def grafana_substituted(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr!r}"
    return expr


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: apt-get install prometheus (Debian package)"
    return subprocess.run(
        [binary, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


# --- The expression checker itself ------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (brand) (rate(vigie_mentions_total{sentiment="negative"}[15m]))',
            {"vigie_mentions_total"},
        ),
        (
            "histogram_quantile(0.95, sum by (le) (rate(x_seconds_bucket[$__rate_interval])))",
            {"x_seconds_bucket"},
        ),
        ('a:b:rate5m > 1e3 and on () (sum(up{job="w"}) > 0) offset 5m', {"a:b:rate5m", "up"}),
        (
            "sum(rate(a_total[5m])) / (sum(rate(a_total[5m])) + sum(rate(b_total[5m])))",
            {"a_total", "b_total"},
        ),
        ('deriv(x{topic=~".*posts[.]valid"}[10m]) > 0 unless bool y', {"x", "y"}),
        ("sum(x) without (instance) * on (brand) group_left (name) y", {"x", "y"}),
    ],
)
def test_metric_name_extraction(expr: str, names: set[str]) -> None:
    assert promql_metric_names(expr) == names


# --- Rules ------------------------------------------------------------------------------------


def test_rule_files_exist() -> None:
    assert {path.name for path in RULE_FILES} == {"alerts.yml", "recording.yml"}


@pytest.mark.parametrize(("name", "expr"), rule_expressions(), ids=lambda v: str(v)[:60])
def test_rules_use_only_exported_metrics(name: str, expr: str) -> None:
    known = exported_series() | recorded_series() | PROMETHEUS_SERIES
    used = promql_metric_names(expr)
    assert used, f"{name} selects no series"
    assert used <= known, f"{name} uses unknown series {sorted(used - known)}"


def test_recording_rules_follow_the_naming_scheme() -> None:
    for record in recorded_series():
        assert re.fullmatch(r"vigie:[a-z0-9_]+:[a-z0-9_]+", record), record


def test_alerts_cover_the_pipeline_health() -> None:
    alerts = {
        rule["alert"]: rule for group in rule_groups() for rule in group["rules"] if "alert" in rule
    }
    for needed in (
        "VigieWorkerDown",
        "VigieConsumerLagGrowing",
        "VigieModelFallingBehind",
        "VigieNotificationsFailing",
    ):
        assert needed in alerts
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name


def test_promtool_accepts_the_rules() -> None:
    result = promtool("check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus-k8s.yml"])
def test_promtool_accepts_the_scrape_configs(config: str) -> None:
    result = promtool("check", "config", config, cwd=PROMETHEUS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 rule files found" in result.stdout


def test_alerts_fire_on_the_series_that_should_raise_them() -> None:
    # deploy/prometheus/tests/alerts_test.yml: a worker down, lag growing, receivers failing.
    result = promtool("test", "rules", "tests/alerts_test.yml", cwd=PROMETHEUS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_component_is_scraped() -> None:
    for config in ("prometheus.yml", "prometheus-k8s.yml"):
        jobs = yaml.safe_load((PROMETHEUS / config).read_text())["scrape_configs"]
        by_name = {job["job_name"]: job for job in jobs}
        assert {"vigie-worker", "vigie-producer"} <= set(by_name), config
        assert by_name["vigie-worker"]["dns_sd_configs"][0]["port"] == 6066
        assert by_name["vigie-producer"]["dns_sd_configs"][0]["port"] == 9464


# --- Dashboards -------------------------------------------------------------------------------


def test_the_four_dashboards_exist_with_stable_uids() -> None:
    uids = {load_dashboard(path)["uid"] for path in DASHBOARDS}
    assert uids == {"vigie-pipeline", "vigie-brands", "vigie-alerting", "vigie-overview"}


@pytest.mark.parametrize(("where", "expr"), dashboard_expressions(), ids=lambda v: str(v)[:70])
def test_dashboards_use_only_exported_metrics(where: str, expr: str) -> None:
    known = exported_series() | recorded_series() | PROMETHEUS_SERIES
    used = promql_metric_names(grafana_substituted(expr))
    assert used, f"{where} selects no series"
    assert used <= known, f"{where} uses unknown series {sorted(used - known)}"


def test_dashboard_queries_parse_as_promql(tmp_path: Path) -> None:
    # promtool parses every expression of a rule file: wrap the dashboard queries in one.
    rules = [
        {"record": f"dashboard:query:{index}", "expr": grafana_substituted(expr)}
        for index, (_, expr) in enumerate(dashboard_expressions())
    ]
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_metric_is_shown_or_alerted_on() -> None:
    used: set[str] = set()
    for _, expr in rule_expressions() + dashboard_expressions():
        used |= promql_metric_names(grafana_substituted(expr))
    unused = []
    for metric in metrics.all_metrics():
        prefix = metric._name
        if not any(name == prefix or name.startswith(prefix + "_") for name in used):
            unused.append(prefix)
    assert not unused, f"metrics no dashboard or rule reads: {unused}"


def test_panels_use_the_provisioned_data_source() -> None:
    provisioned = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"][0]
    assert provisioned["type"] == "prometheus"
    for path in DASHBOARDS:
        dashboard = load_dashboard(path)
        ids = [panel["id"] for panel in panels(dashboard)]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        for panel in panels(dashboard):
            pos = panel["gridPos"]
            assert pos["x"] + pos["w"] <= 24, f"{path.name}: {panel['title']} overflows"
            if "datasource" in panel:
                assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            for target in panel.get("targets", []):
                assert target["datasource"]["uid"] == "${datasource}", panel["title"]
        # A data-source variable, not a fixed uid: the dashboards work in any Grafana, and
        # open on the provisioned data source.
        (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "datasource"]
        assert variable["type"] == "datasource" and variable["query"] == "prometheus"
        assert variable["current"]["value"] == provisioned["uid"]
        assert "vigie-prometheus" not in json.dumps(
            {k: v for k, v in dashboard.items() if k != "templating"}), path.name


def test_dead_letters_are_shown_per_topic_with_their_reasons() -> None:
    dashboard = load_dashboard(GRAFANA / "dashboards" / "vigie-pipeline.json")
    queries = {target["expr"]: panel["title"] for panel in panels(dashboard)
               for target in panel.get("targets", [])}
    for dlq in ("posts.dlq", "mentions.dlq", "alerts.dlq"):
        (query,) = [q for q in queries if f'vigie_dead_letters_total{{dlq="{dlq}"}}' in q]
        assert query.startswith("sum by (stage, reason)"), query


def test_the_overview_lists_every_brand_and_opens_its_dashboard() -> None:
    dashboard = load_dashboard(GRAFANA / "dashboards" / "vigie-overview.json")
    (table,) = [panel for panel in panels(dashboard) if panel["type"] == "table"]
    assert all("by (brand)" in t["expr"] or t["expr"].startswith("vigie:mentions_negative")
               for t in table["targets"])
    (link,) = [prop["value"][0] for override in table["fieldConfig"]["overrides"]
               for prop in override["properties"] if prop["id"] == "links"]
    brands = load_dashboard(GRAFANA / "dashboards" / "vigie-brands.json")
    assert link["url"].startswith(f"/d/{brands['uid']}/")
    assert "var-brand=${__data.fields.brand}" in link["url"]

def test_brand_dashboard_takes_brand_and_time_from_the_url() -> None:
    dashboard = load_dashboard(GRAFANA / "dashboards" / "vigie-brands.json")
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    # ?var-brand=acme selects one brand: a single-valued variable named `brand`.
    assert variables["brand"]["multi"] is False
    assert "vigie_mentions_total" in variables["brand"]["definition"]
    queries = [target["expr"] for panel in panels(dashboard) for target in panel.get("targets", [])]
    assert queries and all('brand="$brand"' in query for query in queries)
    # Incidents appear as annotations on every panel.
    annotations = [a for a in dashboard["annotations"]["list"] if "expr" in a]
    assert any("vigie_incident_events_total" in a["expr"] and a["enable"] for a in annotations)
    # Expected vs observed for each measure the detector reports.
    band = " ".join(queries)
    for measure in ("mentions", "negative", "reach_negative"):
        assert f'vigie_brand_expected{{brand="$brand", measure="{measure}"}}' in band
        assert f'vigie_brand_observed{{brand="$brand", measure="{measure}"}}' in band


def test_dashboard_provider_points_where_compose_mounts_the_dashboards() -> None:
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "vigie.yml").read_text())[
        "providers"
    ][0]
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in mounts
