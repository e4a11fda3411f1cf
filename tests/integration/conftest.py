"""Session-wide broker and workers: a Faust worker takes ~30 s to be ready, so
every cluster is started once, all at the same time, and shared by the tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from stream import scripted_month
from stream.broker import EmbeddedBroker
from tests.integration.harness import Cluster

CLUSTERS = {
    # two workers: every HTTP request may need routing to the owner
    "main": 2,
    # criteria changes touch every account: kept apart from the other tests
    "criteria": 1,
    # restarts, kills and wipes
    "restart": 1,
    # the scripted six weeks, and its replay from scratch on other topics
    "month": 2,
    "month-replay": 1,
    # parked calls giving up on the input's progress: a short grace and lateness
    "parking": 1,
}
#: Event-time settings of the month clusters: the default lateness, silent
#: lanes idle after 3 s, and the wall-clock tick every second.
MONTH_OVERRIDES = {
    "STREAM_IDLE_LANE_SECONDS": "3",
    "STREAM_TICK_SECONDS": "1",
    "STREAM_ALLOWED_LATENESS_SECONDS": "21600",  # the default: this one tests event time for real
}
#: The parking cluster: two input partitions, a 1 h grace and 1 h of lateness.
PARKING_INPUT_PARTITIONS = 2
PARKING_OVERRIDES = {"STREAM_PARK_GRACE_HOURS": "1", "STREAM_ALLOWED_LATENESS_SECONDS": "3600"}


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    with EmbeddedBroker(log_path=log) as b:
        yield b


@pytest.fixture(scope="session")
def clusters(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Cluster]]:
    started: dict[str, Cluster] = {}
    try:
        for name, count in CLUSTERS.items():
            workdir: Path = tmp_path_factory.mktemp(name)
            cluster = Cluster(broker.url, broker.bootstrap, f"it-{name}", workdir)
            if name.startswith("month"):
                criteria_path = workdir / "month-criteria.json"
                criteria_path.write_bytes(orjson.dumps(scripted_month.CRITERIA_V1))
                cluster.criteria_path = criteria_path
                cluster.overrides.update(MONTH_OVERRIDES)
                cluster.create_input_topic(1)  # one lane: the replay sees the same order
            if name == "parking":
                cluster.overrides.update(PARKING_OVERRIDES)
                cluster.create_input_topic(PARKING_INPUT_PARTITIONS)
            for _ in range(count):
                cluster.add_worker()
            started[name] = cluster
        for cluster in started.values():
            for worker in cluster.workers:
                worker.wait_ready()
        yield started
    finally:
        for cluster in started.values():
            cluster.stop()


@pytest.fixture(scope="session")
def main(clusters: dict[str, Cluster]) -> Cluster:
    return clusters["main"]


@pytest.fixture(scope="session")
def month(clusters: dict[str, Cluster]) -> Cluster:
    return clusters["month"]


@pytest.fixture(scope="session")
def parking(clusters: dict[str, Cluster]) -> Cluster:
    return clusters["parking"]


@pytest.fixture(scope="session")
def month_replay(clusters: dict[str, Cluster]) -> Cluster:
    return clusters["month-replay"]
