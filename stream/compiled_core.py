"""The core runs compiled (mypyc, see setup.py); this module keeps that honest.

An extension module shadows the ``.py`` beside it, so a core edited after it
was compiled would silently keep running the old rules. The build records a
digest of every source it compiled (``stream/_core_sources.py``, generated);
importing ``stream`` compares them and refuses a compiled core whose source
has changed. ``STREAM_PURE_PYTHON=1`` runs the source instead of the compiled
modules (for a debugger, a line profiler, or a test that patches the core).
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType

CORE_DIR = Path(__file__).parent / "core"
PURE_PYTHON_VARIABLE = "STREAM_PURE_PYTHON"


def pure_python_requested(env: Mapping[str, str] = os.environ) -> bool:
    return env.get(PURE_PYTHON_VARIABLE, "") not in ("", "0")


def compiled_modules() -> list[str]:
    """Names of the core modules present as extension modules."""
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    names = {p.name.split(".", 1)[0] for p in CORE_DIR.iterdir() if p.name.endswith(suffixes)}
    return sorted(n for n in names if not n.endswith("__mypyc"))


def source_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stale_sources(recorded: dict[str, str]) -> list[str]:
    """Sources whose content differs from what the compiled modules were built from."""
    stale = []
    for name, digest in sorted(recorded.items()):
        path = CORE_DIR / name
        if not path.is_file() or source_digest(path) != digest:
            stale.append(name)
    return stale


def read_record(path: Path) -> dict[str, str]:
    """The digests a build recorded (``SOURCES`` in the generated module)."""
    spec = importlib.util.spec_from_file_location("stream._core_sources", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sources: dict[str, str] = module.SOURCES
    return sources


def is_compiled(module: ModuleType) -> bool:
    return not str(module.__file__).endswith(".py")


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Finds ``stream.core.*`` as source, ahead of the compiled modules."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        if package != "stream.core":
            return None
        source = CORE_DIR / f"{name}.py"
        return importlib.util.spec_from_file_location(fullname, source) if source.is_file() else None


def check() -> None:
    """Run at ``import stream``: the source if asked, else a compiled core only if it is current."""
    if pure_python_requested():
        if not any(isinstance(f, _SourceFinder) for f in sys.meta_path):
            sys.meta_path.insert(0, _SourceFinder())
        return
    compiled = compiled_modules()
    if not compiled:
        return
    record = CORE_DIR.parent / "_core_sources.py"  # by path: never another checkout's record
    if not record.is_file():
        raise ImportError(
            f"{CORE_DIR} holds compiled modules ({', '.join(compiled)}) but no record of their sources "
            "(stream/_core_sources.py): recompile with `make core`, or remove them with `make clean-core`"
        )
    stale = stale_sources(read_record(record))
    if stale:
        raise ImportError(
            f"the compiled core is older than its source ({', '.join(stale)} changed since it was built): "
            f"recompile with `make core`, or set {PURE_PYTHON_VARIABLE}=1 to run the source"
        )
