"""A short version of every fault scenario (``make chaos`` runs the full ones).

Each runs real workers on its own embedded broker (one scenario freezes it),
and must end with the live state, the dead letters and the order-independent
outputs equal to the offline run: nothing lost, nothing double-counted.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from chaos.scenarios import SCALES, SCENARIOS, Result, run_scenario
from stream.broker import EmbeddedBroker
from stream.verify import print_report
from tests.integration.harness import ROOT

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def chaos_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(log_path=tmp_path_factory.mktemp("chaos-broker") / "broker.log") as broker:
        yield broker


def explain(result: Result) -> str:
    out = io.StringIO()
    print(result.row(), file=out)
    if result.report is not None:
        print_report(result.report, out)
    return out.getvalue()


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_loses_and_double_counts_nothing(name: str, chaos_broker: EmbeddedBroker, tmp_path: Path):
    result = run_scenario(name, chaos_broker, tmp_path, SCALES["short"], seed=7)
    assert result.ok and result.lost == 0 and result.double_counted == 0, explain(result)
    assert result.track_calls > 1000
    report = result.report
    assert report is not None
    # every scenario proves its fault really happened
    faults = {"kill-9 x3": 3, "join+leave": 2, "broker freeze": 1, "empty data dir": 1, "criteria change+kills": 3}
    assert result.faults == faults.get(name, 0)
    assert result.faults_in_flight == result.faults, "a fault hit after the workload was published"
    if result.faults:
        assert result.recovery_s is not None and result.recovery_s > 0
    base_version = int(yaml.safe_load((ROOT / "deploy" / "criteria.yaml").read_text())["version"])
    assert result.criteria_version == base_version + (name == "criteria change+kills")
    if name == "producer retries":
        assert result.republished > 0 and result.duplicates_skipped >= result.republished // 2
    if name == "late+out of order":
        assert report.dlq_found["late"] > 0 and report.dlq_found["late"] == report.dlq_expected["late"]
    if name == "hostile input":
        assert result.dlq >= SCALES["short"].hostile // 2
        assert 0 < result.peak_rss < 1024 * 2**20, explain(result)
