"""Session-wide broker and workers: a Faust worker takes ~30 s to be ready, so
every cluster is started once, all at the same time, and shared by the tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stream.broker import EmbeddedBroker
from tests.integration.harness import Cluster

CLUSTERS = {
    # two workers: every HTTP request may need routing to the owner
    "main": 2,
    # criteria changes touch every account: kept apart from the other tests
    "criteria": 1,
    # restarts, kills and wipes
    "restart": 1,
}


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
