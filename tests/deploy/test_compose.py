"""docker-compose accepts docker-compose.yml (Debian's docker-compose: no
Docker engine is needed to validate a file)."""

from __future__ import annotations

import subprocess

import yaml

from tests.deploy.paths import COMPOSE_FILE, ROOT


def test_compose_file_is_valid(tools):
    done = subprocess.run(
        [tools["docker-compose"], "-f", str(COMPOSE_FILE.relative_to(ROOT)), "config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"docker-compose config failed:\n{done.stderr}"
    resolved = yaml.safe_load(done.stdout)
    assert set(resolved["services"]) == {
        "kafka",
        "topic-init",
        "worker-1",
        "worker-2",
        "generator",
        "prometheus",
        "grafana",
    }
    assert resolved["services"]["kafka"]["image"].startswith("apache/kafka:")
    assert resolved["services"]["worker-1"]["depends_on"]["topic-init"]["condition"] == (
        "service_completed_successfully"
    )
