"""The expression extraction and the signal splitter the live test relies on."""

from __future__ import annotations

from tests.deploy.promql import all_dashboard_expressions, all_rule_expressions, signals


def test_signals_of_a_threshold():
    assert signals('up{job="stream"} == 0') == ['up{job="stream"}']
    assert signals("sum by (reason) (rate(x_total[5m])) > 0.1") == ["sum by (reason) (rate(x_total[5m]))"]
    assert signals("histogram_quantile(0.99, sum by (le) (rate(b[5m])))\n> 5") == [
        "histogram_quantile(0.99, sum by (le) (rate(b[5m])))"
    ]


def test_signals_of_combined_conditions():
    expr = "deriv(a:sum[10m]) > 0\nand\na:sum > 1000"
    assert signals(expr) == ["deriv(a:sum[10m])", "a:sum"]
    expr = '(sum(rate(e[15m])) == 0 or absent(e{job="s"})) and on () (sum(r) > 0)'
    assert signals(expr) == ["sum(rate(e[15m]))", 'e{job="s"}', "sum(r)"]
    assert signals("a / on () group_left () b > bool 2 unless ignoring (x) c") == ["a / on () group_left () b", "c"]


def test_operators_inside_selectors_strings_and_calls_are_not_split():
    assert signals('m{a=~"x|y", b!="z>1"}') == ['m{a=~"x|y", b!="z>1"}']
    assert signals("sum(a > 1)") == ["sum(a > 1)"]
    assert signals("max_over_time(or_metric[5m]) >= 3") == ["max_over_time(or_metric[5m])"]
    assert signals("(a) + (b) > 1") == ["(a) + (b)"]


def test_extraction_finds_every_panel_and_rule():
    panels = all_dashboard_expressions()
    rules = all_rule_expressions()
    assert len(panels) >= 30
    assert {e.kind for e in rules} == {"alert", "record"}
    assert len({e.id for e in panels + rules}) == len(panels + rules)
    for alert in (e for e in rules if e.kind == "alert"):
        assert signals(alert.expr), alert.id
        assert alert.expr.strip() not in signals(alert.expr), f"{alert.id} compares nothing"
