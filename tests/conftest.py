from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stream.compiled_core import PURE_PYTHON_VARIABLE
from stream.core.criteria import Criteria, load_criteria_text

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def criteria() -> Criteria:
    return load_criteria_text((ROOT / "deploy" / "criteria.yaml").read_text())


def run_python(args: list[str], *, pure: bool = False, path: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """``python *args`` in a fresh interpreter on the package at ``path``: on
    the compiled core, or on its source (``pure``). Which core modules load is
    decided once per process, so checks of it cannot run in this one."""
    env = {k: v for k, v in os.environ.items() if k not in (PURE_PYTHON_VARIABLE, "PYTHONPATH")}
    if pure:
        env[PURE_PYTHON_VARIABLE] = "1"
    env["PYTHONPATH"] = str(path)
    return subprocess.run(
        [sys.executable, *args], cwd=path, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def passes_on_source(nodeid: str) -> None:
    """Runs one test again in a fresh interpreter on the core's source.

    For the few tests that patch a core function to watch it being called: the
    compiled core calls its functions directly, so a patch never sees a call."""
    run = run_python(["-m", "pytest", "-q", "-p", "no:cacheprovider", nodeid], pure=True)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "1 passed" in run.stdout, run.stdout[-2000:]
