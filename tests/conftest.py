from __future__ import annotations

from pathlib import Path

import pytest

from stream.core.criteria import Criteria, load_criteria_text

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def criteria() -> Criteria:
    return load_criteria_text((ROOT / "deploy" / "criteria.yaml").read_text())
