"""A real Prometheus for the live test: the project's prometheus.yml, pointed
at a worker on a loopback port, scraping and evaluating every second."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from stream.broker import die_with_parent, free_port
from stream.workload import WorkloadSpec
from tests.deploy.paths import PROMETHEUS_DIR, PROMETHEUS_YML
from tests.integration.harness import Cluster, WorkerProcess, wait_until

#: The live workload: small enough to be processed in seconds, large enough
#: that accounts activate, triggers fire and every product gauge has values.
WORKLOAD = WorkloadSpec(accounts=12, days=21, seed=11)
#: Input the worker must reject (so the dead-letter series exist): not JSON,
#: and JSON that is not an object.
BAD_INPUT = [(b"bad-1", b"not json"), (b"bad-2", b"[1, 2, 3]")]
SCRAPE_INTERVAL = "1s"


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def get(self, path: str, **params: Any) -> Any:
        response = httpx.get(f"{self.url}{path}", params=params, timeout=10)
        return response.json()

    def query(self, expr: str) -> dict[str, Any]:
        """The raw answer of /api/v1/query (status, data or error)."""
        result: dict[str, Any] = self.get("/api/v1/query", query=expr)
        return result

    def value(self, expr: str) -> float | None:
        answer = self.query(expr)
        result = answer.get("data", {}).get("result", [])
        return float(result[0]["value"][1]) if answer.get("status") == "success" and result else None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Live:
    cluster: Cluster
    worker: WorkerProcess
    prometheus: Prometheus


def live_prometheus_config(target: str) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml, scraping ``target`` every second: same
    job, same metrics path, same rule files (made absolute)."""
    config: dict[str, Any] = yaml.safe_load(PROMETHEUS_YML.read_text())
    config["global"].update(scrape_interval=SCRAPE_INTERVAL, scrape_timeout=SCRAPE_INTERVAL)
    config["global"]["evaluation_interval"] = SCRAPE_INTERVAL
    config["rule_files"] = [str(PROMETHEUS_DIR / pattern) for pattern in config["rule_files"]]
    jobs = [job for job in config["scrape_configs"] if job["job_name"] == "stream"]
    assert len(jobs) == 1, "prometheus.yml must have exactly one job named stream"
    jobs[0]["static_configs"] = [{"targets": [target]}]
    return config


def start_prometheus(binary: str, target: str, workdir: Path) -> Prometheus:
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(live_prometheus_config(target)))
    port = free_port()
    log_path = workdir / "prometheus.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    prometheus = Prometheus(f"http://127.0.0.1:{port}", process, log_path)

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"prometheus exited with {process.returncode}; see {log_path}")
        return httpx.get(f"{prometheus.url}/-/ready", timeout=2).status_code == 200

    try:
        wait_until(ready, 30, 0.2, "prometheus to be ready")
    except BaseException:
        prometheus.stop()
        raise
    return prometheus


def wait_for_settled_scrapes(prometheus: Prometheus, since: float, timeout: float = 60.0) -> None:
    """Until the target was scraped and every rule group evaluated at least
    twice after ``since`` (Unix time), so that rates see the final counters
    and recording rules the final gauges."""
    settle = since + 2.5

    def settled() -> bool:
        targets = prometheus.get("/api/v1/targets")["data"]["activeTargets"]
        groups = prometheus.get("/api/v1/rules")["data"]["groups"]
        scrapes = [_unix(t["lastScrape"]) for t in targets if t["labels"].get("job") == "stream"]
        evaluations = [_unix(g["lastEvaluation"]) for g in groups]
        return bool(scrapes and evaluations) and min(scrapes + evaluations) > settle

    wait_until(settled, timeout, 0.5, "scrapes and rule evaluations after the worker settled")


def _unix(rfc3339: str) -> float:
    """Prometheus' timestamps (RFC 3339, nanoseconds) as Unix seconds."""
    stamp = re.sub(r"(\.\d{6})\d*", r"\1", rfc3339).replace("Z", "+00:00")
    return datetime.fromisoformat(stamp).timestamp()
