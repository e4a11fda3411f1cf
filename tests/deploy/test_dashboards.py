"""The Grafana provisioning and dashboards are well formed and aggregate the
workers' series the right way (the live test runs every query)."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from tests.deploy.paths import GRAFANA_PROVISIONING, dashboard_files
from tests.deploy.promql import all_dashboard_expressions, all_rule_expressions, dashboard_expressions


def test_datasource_points_at_the_compose_prometheus():
    doc = yaml.safe_load((GRAFANA_PROVISIONING / "datasources" / "prometheus.yml").read_text())
    [source] = doc["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"


def test_dashboard_provider_loads_the_mounted_dashboards():
    doc = yaml.safe_load((GRAFANA_PROVISIONING / "dashboards" / "provider.yml").read_text())
    [provider] = doc["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"]


def test_two_dashboards_with_unique_ids():
    boards = [json.loads(p.read_text()) for p in dashboard_files()]
    assert len(boards) == 2
    assert len({b["uid"] for b in boards}) == 2


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.stem)
def test_every_panel_queries_the_provisioned_datasource(path):
    source = yaml.safe_load((GRAFANA_PROVISIONING / "datasources" / "prometheus.yml").read_text())["datasources"][0]
    board = json.loads(path.read_text())
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert panels
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": source["uid"]}, panel["title"]
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
    assert dashboard_expressions(path)


def test_series_are_summed_over_workers_never_averaged():
    """Each worker reports only its own partitions: an average over workers is
    wrong, a sum is exact."""
    for expression in all_dashboard_expressions() + all_rule_expressions():
        assert not re.search(r"\bavg(_over_time)?\b", expression.expr), expression.id


def test_product_dashboard_uses_the_fixed_kpi_series():
    exprs = " ".join(e.expr for e in all_dashboard_expressions() if e.id.startswith("stream-product/"))
    for name in (
        "stream_accounts_by_activation_rate",
        "stream_users_by_activation_rate",
        "stream_milestone_reached",
        "stream_accounts_by_engagement_7d",
        "stream_drift_alerts_open",
        "stream_lifecycle_triggers_total",
        "stream_kpi_numerator",
        "stream_kpi_denominator",
        "stream_kpi_cohort_users",
        "stream_kpi_milestone_adopters",
        "stream_kpi_active_users_by_role",
        "stream_kpi_time_to_activate_seconds_bucket",
    ):
        assert name in exprs, name


def exposed_names() -> set[str]:
    """Every series name the worker's registry exposes (with the suffixes of
    counters and histograms)."""
    from stream.worker import metrics

    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    return {f.name + s for f in metrics.REGISTRY.collect() for s in suffixes[f.type]}


def referenced_names(expr: str) -> set[str]:
    unquoted = re.sub(r'"(\\.|[^"\\])*"', '""', expr)
    return {n for n in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", unquoted) if n.startswith("stream_") and ":" not in n}


def test_every_metric_name_is_one_the_worker_exports():
    exposed = exposed_names()
    for expression in all_dashboard_expressions() + all_rule_expressions():
        unknown = referenced_names(expression.expr) - exposed
        assert not unknown, f"{expression.id}: {sorted(unknown)} not in stream/worker/metrics.py"
