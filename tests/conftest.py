from __future__ import annotations

from pathlib import Path

import pytest

from stream.core.criteria import Criteria, load_criteria_text

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def criteria() -> Criteria:
    return load_criteria_text((ROOT / "deploy" / "criteria.yaml").read_text())


def passes_on_source(nodeid: str) -> None:
    """Runs one test again in a fresh interpreter on the core's source.

    For the few tests that patch a core function to watch it being called: the
    compiled core calls its functions directly, so a patch never sees a call."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, STREAM_PURE_PYTHON="1")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", nodeid],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "1 passed" in run.stdout, run.stdout[-2000:]
