"""A worker built as `stream worker` builds it, without starting it: no broker
is contacted, so its app, tables, consumer and timers can be inspected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stream.core.criteria import load_criteria_text
from stream.settings import Settings
from stream.worker.app import ActivationWorker


def offline_worker(data_dir: Path, **overrides: Any) -> ActivationWorker:
    """The demo's criteria; ``overrides``: Settings fields."""
    settings = Settings(broker_url="kafka://127.0.0.1:1", data_dir=data_dir, **overrides)
    criteria = load_criteria_text(settings.criteria_path.read_text(), str(settings.criteria_path))
    return ActivationWorker(settings, criteria)
