"""promtool accepts the Prometheus configuration and rules, and the rules'
unit tests (deploy/prometheus/tests: every alert firing and not firing) pass."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from tests.deploy.paths import PROMETHEUS_YML, ROOT, rule_files, rule_test_files
from tests.deploy.promql import rule_expressions


def promtool(tools: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [tools["promtool"], *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"promtool {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def relative(paths: list) -> list[str]:
    return [str(p.relative_to(ROOT)) for p in paths]


def test_config_is_valid(tools):
    done = promtool(tools, "check", "config", str(PROMETHEUS_YML.relative_to(ROOT)))
    # the rule_files glob matches the rule files, which are checked with it
    assert f"{len(rule_files())} rule files found" in done.stdout


def test_rules_are_valid(tools):
    assert rule_files(), "no rule files in deploy/prometheus/rules"
    promtool(tools, "check", "rules", *relative(rule_files()))


def test_rule_unit_tests_pass(tools):
    assert rule_test_files(), "no promtool tests in deploy/prometheus/tests"
    promtool(tools, "test", "rules", *relative(rule_test_files()))


def test_every_alert_has_a_firing_and_a_quiet_unit_test():
    alerts = {e.id.removeprefix("alert/") for path in rule_files() for e in rule_expressions(path) if e.kind == "alert"}
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in rule_test_files():
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert alerts, "no alert rules"
    assert alerts - firing == set(), "alerts never expected to fire in a unit test"
    assert alerts - quiet == set(), "alerts never expected to stay quiet in a unit test"


@pytest.mark.parametrize("path", rule_files(), ids=lambda p: p.name)
def test_rules_select_the_stream_job(path):
    """The scrape job is named stream; rules that filter by job use that name."""
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    assert [job["job_name"] for job in config["scrape_configs"]] == ["stream"]
    for expression in rule_expressions(path):
        assert "job=" not in expression.expr.replace(" ", "") or 'job="stream"' in expression.expr
