"""Grafana provisioning and the generated monitoring files hang together (no Grafana needed)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from monitoring import DATASOURCE_UID, GRAFANA_FOLDER
from monitoring.alerts import ALERTS
from monitoring.render import outputs
from stream_app.adapters.metrics import WorkerMetrics

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "grafana"
PROVISIONING = GRAFANA / "provisioning"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
METRIC_NAME = re.compile(r"\b(driftline_[a-z0-9_]+|up)\b(?!\s*\()")


def _yaml(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def _panels(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    found: list[dict[str, Any]] = []
    for panel in items:
        found.append(panel)
        found += _panels(panel.get("panels", []))
    return found


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in DASHBOARDS}


@pytest.fixture(scope="module")
def grafana_rules() -> list[dict[str, Any]]:
    data = _yaml(PROVISIONING / "alerting" / "rules.yaml")
    return [rule for group in data["groups"] for rule in group["rules"]]


def _worker_series_names() -> set[str]:
    """Series names the worker exports (histograms as _bucket/_sum/_count, counters with _total)."""
    names = {"up"}
    for family in WorkerMetrics(CollectorRegistry()).registry.collect():
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        else:
            names.add(family.name)
    return names


def _exprs(dashboards: dict[str, dict[str, Any]], grafana_rules: list[dict[str, Any]]) -> list[str]:
    exprs = [t["expr"] for d in dashboards.values() for p in _panels(d["panels"]) for t in p.get("targets", [])]
    exprs += [q["model"]["expr"] for r in grafana_rules for q in r["data"] if q["datasourceUid"] == DATASOURCE_UID]
    return exprs


@pytest.mark.parametrize("relative", sorted(outputs()))
def test_generated_files_are_up_to_date(relative: str) -> None:
    path = ROOT / relative
    assert path.exists(), f"{relative} is missing: run python -m monitoring.render"
    assert path.read_text() == outputs()[relative], f"{relative} is out of date: run python -m monitoring.render"


def test_datasource_has_the_fixed_uid_and_url_from_env() -> None:
    (source,) = _yaml(PROVISIONING / "datasources" / "prometheus.yaml")["datasources"]
    assert source["uid"] == DATASOURCE_UID
    assert source["type"] == "prometheus"
    assert source["url"] == "${PROMETHEUS_URL}"


def test_dashboard_provider_reads_the_mounted_folder() -> None:
    compose = _yaml(ROOT / "docker-compose.yml")
    mounts = dict(str(m).split(":")[:2] for m in compose["services"]["grafana"]["volumes"])
    (provider,) = _yaml(PROVISIONING / "dashboards" / "driftline.yaml")["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == mounts["./grafana/dashboards"]
    assert provider["folder"] == GRAFANA_FOLDER


def test_two_dashboards_with_unique_uids(dashboards: dict[str, dict[str, Any]]) -> None:
    assert set(dashboards) == {"driftline-overview.json", "driftline-drift.json"}
    uids = [d["uid"] for d in dashboards.values()]
    assert len(set(uids)) == len(uids)
    titles = [d["title"] for d in dashboards.values()]
    assert len(set(titles)) == len(titles)


@pytest.mark.parametrize("name", [path.name for path in DASHBOARDS])
def test_dashboard_panels(dashboards: dict[str, dict[str, Any]], name: str) -> None:
    dashboard = dashboards[name]
    assert dashboard["uid"] == Path(name).stem
    assert dashboard["schemaVersion"] >= 39
    assert dashboard["editable"] is False, f"{name}: edits in Grafana's UI would not persist"
    panels = _panels(dashboard["panels"])
    assert panels
    ids = [p["id"] for p in panels]
    assert len(set(ids)) == len(ids), f"{name}: duplicate panel ids"
    for panel in panels:
        where = f"{name}: panel {panel['id']} {panel['title']!r}"
        assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}, where
        assert panel["fieldConfig"]["defaults"]["unit"], f"{where} has no unit"
        assert panel["targets"], f"{where} has no query"
        for target in panel["targets"]:
            assert target["expr"].strip(), where
            assert target["legendFormat"].strip(), where
            assert target.get("datasource", panel["datasource"])["uid"] == DATASOURCE_UID, where
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, where
        assert panel["description"], where
    ref_ids = [[t["refId"] for t in p["targets"]] for p in panels]
    assert all(len(set(r)) == len(r) for r in ref_ids)


@pytest.mark.parametrize(
    ("name", "metrics"),
    [
        ("driftline-overview.json", [
            "driftline_events_received_total", "driftline_events_processed_total", "driftline_dead_letters_total",
            "driftline_end_to_end_latency_seconds_bucket", "driftline_stage_duration_seconds_bucket",
            "driftline_batch_size_events_bucket", "driftline_model_info", "driftline_assigned_partitions",
            "driftline_consumer_lag_messages", "driftline_degraded_predictions_total",
            "driftline_feature_read_failures_total",
        ]),
        ("driftline-drift.json", [
            "driftline_feature_psi", "driftline_feature_drift_flagged", "driftline_feature_drift_pvalue",
            "driftline_prediction_psi", "driftline_prediction_drift_pvalue", "driftline_prediction_drift_flagged",
            "driftline_feature_missing_ratio", "driftline_feature_age_seconds_bucket",
            "driftline_stale_features_total", "driftline_prediction_score_bucket",
        ]),
    ],
)
def test_dashboards_cover_the_worker(dashboards: dict[str, dict[str, Any]], name: str, metrics: list[str]) -> None:
    text = " ".join(t["expr"] for p in _panels(dashboards[name]["panels"]) for t in p["targets"])
    missing = [m for m in metrics if m not in text]
    assert not missing, f"{name} shows none of {missing}"


def test_every_queried_metric_is_exported_by_the_worker(
    dashboards: dict[str, dict[str, Any]], grafana_rules: list[dict[str, Any]]
) -> None:
    known = _worker_series_names()
    used = {name for expr in _exprs(dashboards, grafana_rules) for name in METRIC_NAME.findall(expr)}
    assert used, "no metric names found"
    unknown = sorted(used - known)
    assert not unknown, f"queried but not exported by WorkerMetrics: {unknown}"


def test_alert_rules_query_the_provisioned_datasource(grafana_rules: list[dict[str, Any]]) -> None:
    assert [r["title"] for r in grafana_rules] == [a.name for a in ALERTS]
    uids = [r["uid"] for r in grafana_rules]
    assert len(set(uids)) == len(uids)
    for rule in grafana_rules:
        refs = {q["refId"]: q for q in rule["data"]}
        assert rule["condition"] in refs, rule["title"]
        queries = [q for q in rule["data"] if q["datasourceUid"] != "__expr__"]
        assert queries, f"{rule['title']} queries no datasource"
        for query in queries:
            assert query["datasourceUid"] == DATASOURCE_UID, rule["title"]
            assert query["model"]["datasource"]["uid"] == DATASOURCE_UID, rule["title"]
            assert query["model"]["expr"].strip(), rule["title"]
        for expression in (q for q in rule["data"] if q["datasourceUid"] == "__expr__"):
            assert expression["model"]["expression"] in refs, rule["title"]


def test_alert_rules_carry_summary_description_and_runbook(grafana_rules: list[dict[str, Any]]) -> None:
    for rule in grafana_rules:
        for key in ("summary", "description", "runbook"):
            assert rule["annotations"].get(key, "").strip(), f"{rule['title']} lacks {key}"
        assert rule["labels"]["severity"] in {"page", "ticket"}
        assert rule["for"], rule["title"]


def test_alert_rules_have_no_env_expanded_dollar(grafana_rules: list[dict[str, Any]]) -> None:
    # Grafana's file provisioning expands $VARS in queries and labels (not in annotations), so a `$`
    # there would silently change the rule.
    for rule in grafana_rules:
        assert "$" not in json.dumps(rule["data"]) + json.dumps(rule["labels"]), rule["title"]


def test_prometheus_and_grafana_rules_agree(grafana_rules: list[dict[str, Any]]) -> None:
    prometheus = {r["alert"]: r for g in _yaml(ROOT / "prometheus" / "alerts.yml")["groups"] for r in g["rules"]}
    assert set(prometheus) == {r["title"] for r in grafana_rules}
    for rule in grafana_rules:
        twin = prometheus[rule["title"]]
        assert twin["for"] == rule["for"]
        assert twin["labels"] == rule["labels"]
        assert twin["annotations"] == rule["annotations"]
        (query,) = (q for q in rule["data"] if q["datasourceUid"] == DATASOURCE_UID)
        assert twin["expr"].startswith(f"({query['model']['expr']}) ")


def test_contact_point_and_policy_reference_each_other(grafana_rules: list[dict[str, Any]]) -> None:
    points = _yaml(PROVISIONING / "alerting" / "contact-points.yaml")["contactPoints"]
    names = {p["name"] for p in points}
    (webhook,) = (r for p in points for r in p["receivers"])
    assert webhook["type"] == "webhook"
    assert webhook["settings"]["url"] == "${DRIFTLINE_ALERT_WEBHOOK_URL}"
    (policy,) = _yaml(PROVISIONING / "alerting" / "policies.yaml")["policies"]

    def receivers(node: dict[str, Any]) -> list[str]:
        return [node["receiver"], *(name for route in node.get("routes", []) for name in receivers(route))]

    assert set(receivers(policy)) <= names
    assert policy["receiver"] in names
    routed = {
        tuple(sorted((m[0], m[2]) for m in route["object_matchers"] if m[1] == "="))
        for route in policy.get("routes", [])
    }
    for rule in grafana_rules:
        labels = rule["labels"]
        assert (("service", labels["service"]), ("severity", labels["severity"])) in routed, rule["title"]
