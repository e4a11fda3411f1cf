"""The compiled core (setup.py, mypyc) is the source's rules, current, and can be set aside.

Each check runs in a fresh interpreter: which modules load, and whether
``import stream`` accepts them, is decided once per process."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import orjson

from stream.compiled_core import read_record
from tests.conftest import ROOT, run_python

LOADED = """
import importlib, json, pkgutil, sys
import stream.core
for module in pkgutil.iter_modules(stream.core.__path__):
    if not module.name.endswith("__mypyc"):
        importlib.import_module(f"stream.core.{module.name}")
loaded = {n: m.__spec__.origin for n, m in sys.modules.items() if n.startswith("stream.core.")}
print(json.dumps({n: origin for n, origin in loaded.items() if not n.endswith("__mypyc")}))
"""


def python(code: str, *, pure: bool = False, path: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return run_python(["-c", code], pure=pure, path=path)


def loaded_modules(pure: bool) -> dict[str, str]:
    run = python(LOADED, pure=pure)
    assert run.returncode == 0, run.stderr
    return orjson.loads(run.stdout)


def recorded_sources() -> dict[str, str]:
    """What setup.py compiled, from the record it writes (``make core``)."""
    return read_record(ROOT / "stream" / "_core_sources.py")


def test_the_core_runs_compiled_every_module_it_built() -> None:
    compiled = {name for name, origin in loaded_modules(pure=False).items() if not origin.endswith(".py")}
    assert compiled == {f"stream.core.{name.removesuffix('.py')}" for name in recorded_sources()}
    # the rules themselves, not only helpers
    assert {"stream.core.activation", "stream.core.alerts", "stream.core.sweep"} <= compiled


def test_pure_python_runs_every_core_module_from_its_source() -> None:
    origins = loaded_modules(pure=True)
    assert "stream.core.activation" in origins
    assert all(origin.endswith(".py") for origin in origins.values()), origins


def package_copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "stream", tmp_path / "stream", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")
    return tmp_path


def test_a_compiled_core_older_than_its_source_is_refused(tmp_path: Path) -> None:
    copy = package_copy(tmp_path)
    kpis = copy / "stream" / "core" / "kpis.py"
    kpis.write_text(kpis.read_text() + "\n# edited after the build\n")
    run = python("import stream.core", path=copy)
    assert run.returncode != 0
    assert "ImportError: the compiled core is older than its source (kpis.py changed" in run.stderr
    assert "make core" in run.stderr
    # the source still runs when asked for
    assert python("import stream.core.kpis", pure=True, path=copy).returncode == 0


def test_compiled_modules_without_the_record_of_their_sources_are_refused(tmp_path: Path) -> None:
    copy = package_copy(tmp_path)
    (copy / "stream" / "_core_sources.py").unlink()
    run = python("import stream", path=copy)
    assert run.returncode != 0
    assert "no record of their sources" in run.stderr and "make core" in run.stderr


DIGEST = """
from tests.test_compiled_core import replay_digest
print(replay_digest())
"""


def replay_digest() -> str:
    """A digest of everything an offline replay produces from a skewed workload
    (single calls and batch envelopes) with hostile messages mixed in."""
    from bench.workload import BenchSpec, BenchWorkload
    from stream.core.criteria import load_criteria_text
    from stream.core.replay import OfflinePipeline
    from stream.hostile import hostile_messages

    workload = BenchWorkload(BenchSpec(accounts=200, users=2_000, tracks=30_000, days=10, batch_size=20))
    messages = [value for _, value in workload.single_messages()]
    messages += [value for _, value in workload.batch_messages()][:100]
    last_call_ms = max(call[0] for call in workload.calls)
    hostile = [value for _, value in hostile_messages(1_500, seed=3, now_ms=last_call_ms)]
    pipeline = OfflinePipeline(load_criteria_text((ROOT / "deploy" / "criteria.yaml").read_text()))
    for offset, value in enumerate(messages):
        pipeline.feed(value, offset=offset)
        if offset % 10 == 0 and offset // 10 < len(hostile):  # on a partition of its own: its own clock
            pipeline.feed(hostile[offset // 10], partition=1, offset=offset // 10)
    pipeline.finish(idle_ms=3 * 86_400_000)
    digest = hashlib.sha256()
    for account_id in sorted(pipeline.accounts):
        digest.update(pipeline.accounts[account_id].to_bytes())
    for key in sorted(pipeline.users):
        digest.update(pipeline.users[key].to_bytes())
    rejections = [(r.reason, r.detail) for r in pipeline.rejections]
    outputs = [pipeline.records, pipeline.triggers, pipeline.alerts, rejections]
    digest.update(orjson.dumps(outputs, option=orjson.OPT_SORT_KEYS, default=str))
    counts = [len(pipeline.accounts), len(pipeline.records), len(pipeline.triggers), len(pipeline.alerts)]
    return f"{digest.hexdigest()} {[*counts, len(rejections)]}"


def test_the_compiled_core_and_its_source_produce_the_same_outputs() -> None:
    compiled, source = python(DIGEST), python(DIGEST, pure=True)
    assert compiled.returncode == 0, compiled.stderr
    assert source.returncode == 0, source.stderr
    assert compiled.stdout == source.stdout
    accounts, records, triggers, alerts, rejections = orjson.loads(compiled.stdout.split(" ", 1)[1])
    assert accounts > 100 and records > 10 and triggers > 100 and alerts > 100 and rejections > 500  # work to agree on
