"""Every PromQL expression of the dashboards and rules, asked of a real
Prometheus scraping a real worker that processed real traffic.

The ``live`` fixture (conftest.py) starts the embedded broker, one
`stream worker`, and the Debian `prometheus` binary with the project's
prometheus.yml (job, metrics path and rule files; the target is the worker's
loopback port, and it scrapes and evaluates every second). It publishes the
synthetic workload (stream.workload) plus two bad records, waits until
Prometheus holds every event, the dead letters and every account, then for
one gauge refresh of the worker and for two scrapes and rule evaluations
after it.

Then:

* every dashboard query and every recording rule must be valid
  (``/api/v1/query`` answers status success) and return data (a non-empty
  result); a recording rule's own series must exist too (it was evaluated);
* an alert expression is legitimately empty while all is well (it is a
  threshold comparison), so it must be valid, and each of its *signals* must
  return data: the alert is split at its top-level comparisons and
  ``and``/``or``/``unless``, thresholds are dropped, and ``absent(x)``
  contributes ``x`` (tests/deploy/promql.py ``signals``). ``up == 0`` thus
  requires ``up`` to have data; a lag alert requires both the lag derivative
  and the lag.

Nothing is skipped: a metric the worker does not export yet fails here.
"""

from __future__ import annotations

import pytest

from tests.deploy.live import Live
from tests.deploy.promql import Expression, all_dashboard_expressions, all_rule_expressions, signals

pytestmark = pytest.mark.integration


def data_queries() -> list[tuple[str, str]]:
    """(id, expr) of everything that must return data."""
    out = []
    for e in all_dashboard_expressions():
        out.append((e.id, e.expr))
    for e in all_rule_expressions():
        if e.kind == "record":
            assert e.record is not None
            out.append((e.id, e.expr))
            out.append((f"{e.id}/series", e.record))
        else:
            parts = signals(e.expr)
            out += [(f"{e.id}/signal-{i}", part) for i, part in enumerate(parts, 1)]
    return out


DATA = data_queries()
ALERTS = [e for e in all_rule_expressions() if e.kind == "alert"]


def answer(live: Live, expr: str) -> list[object]:
    result = live.prometheus.query(expr)
    assert result.get("status") == "success", f"invalid: {expr}\n{result.get('error')}"
    data = result["data"]["result"]
    assert isinstance(data, list)
    return data


@pytest.mark.parametrize("expr", [e for _, e in DATA], ids=[i for i, _ in DATA])
def test_query_returns_data(live: Live, expr: str):
    assert answer(live, expr), f"no data: {expr}"


@pytest.mark.parametrize("alert", ALERTS, ids=[e.id for e in ALERTS])
def test_alert_expression_is_valid(live: Live, alert: Expression):
    answer(live, alert.expr)


def test_the_rules_are_loaded_and_healthy(live: Live):
    groups = live.prometheus.get("/api/v1/rules")["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) == len(all_rule_expressions())
    unhealthy = {rule["name"]: rule.get("lastError") for rule in rules if rule["health"] != "ok"}
    assert not unhealthy
