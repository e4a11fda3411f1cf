"""Session fixtures of the deployment tests: the tools (installed from Debian's
packages when missing), and a live stack: the embedded broker, one real
`stream worker` fed with the synthetic workload, and a real Prometheus
scraping it with the project's own rules loaded."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

from stream.broker import EmbeddedBroker
from stream.worker.gauges import REFRESH_SECONDS
from stream.workload import generate_calls, generate_messages
from tests.deploy.live import BAD_INPUT, WORKLOAD, Live, Prometheus, start_prometheus, wait_for_settled_scrapes
from tests.integration.harness import TEST_OVERRIDES, Cluster, wait_until

#: command -> the Debian package that ships it
TOOLS = {"prometheus": "prometheus", "promtool": "prometheus", "docker-compose": "docker-compose"}


def _install(packages: list[str]) -> None:
    def fail(why: str) -> None:
        pytest.fail(
            f"the deployment tests need {', '.join(packages)} (Debian packages) and cannot install them: {why}. "
            f"Install them with: apt-get install -y --no-install-recommends {' '.join(packages)}",
            pytrace=False,
        )

    if shutil.which("apt-get") is None:
        fail("apt-get is not available")
    if os.geteuid() != 0:
        fail("not running as root")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
    ):
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, check=False)
        except subprocess.TimeoutExpired:
            fail(f"`{' '.join(cmd)}` did not finish within 15 minutes")
        if done.returncode != 0:
            fail(f"`{' '.join(cmd)}` exited with {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


@pytest.fixture(scope="session")
def tools() -> dict[str, str]:
    """Paths of prometheus, promtool and docker-compose, installed once per
    session (one apt-get run for all that are missing)."""
    missing = sorted({package for command, package in TOOLS.items() if shutil.which(command) is None})
    if missing:
        _install(missing)
    found = {command: shutil.which(command) for command in TOOLS}
    absent = [command for command, path in found.items() if path is None]
    if absent:
        pytest.fail(f"{', '.join(absent)} still not found after installing {', '.join(missing)}", pytrace=False)
    return {command: str(path) for command, path in found.items()}


@pytest.fixture(scope="session")
def live(tools: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    workdir = tmp_path_factory.mktemp("deploy-live")
    calls = len(generate_calls(WORKLOAD))
    with EmbeddedBroker(log_path=workdir / "broker.log") as broker:
        overrides = dict(
            TEST_OVERRIDES,
            # production-size caches (the integration tests' tiny ones are for eviction tests)
            STREAM_CACHE_ACCOUNTS="10000",
            STREAM_CACHE_USERS="20000",
            # event time moves on (midnight sweeps: drift alerts) seconds after the last event
            STREAM_IDLE_LANE_SECONDS="3",
            STREAM_TICK_SECONDS="1",
            # the production lateness: sweeps run, and drift alerts open
            STREAM_ALLOWED_LATENESS_SECONDS="21600",
        )
        cluster = Cluster(broker.url, broker.bootstrap, "deploy", workdir, overrides=overrides)
        prometheus: Prometheus | None = None
        try:
            worker = cluster.add_worker()
            prometheus = start_prometheus(tools["prometheus"], f"127.0.0.1:{worker.web_port}", workdir)
            worker.wait_ready()
            cluster.produce(generate_messages(WORKLOAD))
            cluster.produce(BAD_INPUT)
            p = prometheus
            seen: dict[str, float] = {}

            def processed() -> bool:
                if worker.process is None or worker.process.poll() is not None:
                    raise AssertionError(f"the worker exited; see {worker.log_path}")
                for name, expr in (
                    ("events", "sum(stream_events_total)"),
                    ("dead letters", "sum(stream_dlq_records_total)"),
                    ("accounts", "sum(stream_accounts)"),
                ):
                    seen[name] = p.value(expr) or 0
                return (
                    seen["events"] >= calls
                    and seen["dead letters"] >= len(BAD_INPUT)
                    and seen["accounts"] >= WORKLOAD.accounts
                )

            expected = f"{calls} events, {len(BAD_INPUT)} dead letters and {WORKLOAD.accounts} accounts"
            try:
                wait_until(processed, 120, 0.5, f"{expected} in prometheus")
            except AssertionError as exc:
                raise AssertionError(f"{exc}; seen: {seen}; logs in {workdir}") from None
            # the state gauges are recomputed every REFRESH_SECONDS: wait for
            # one refresh after the last event, and for scrapes after it
            wait_for_settled_scrapes(prometheus, time.time() + REFRESH_SECONDS)
            yield Live(cluster, worker, prometheus)
        finally:
            if prometheus is not None:
                prometheus.stop()
            cluster.stop()
