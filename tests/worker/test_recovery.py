"""The bulk phase inside Faust's recovery: what it hands the reader, how it
moves Faust's offsets, and that a rebalance or a cancellation stops the
reader's writes before Faust goes on (the reader itself is tested against the
broker in tests/integration/test_bulk_restore.py)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import faust
import pytest
from faust.types import TP

from stream.settings import Settings
from stream.worker import metrics
from stream.worker import recovery as recovery_module
from stream.worker.bulk_restore import Changelog, Gate, Stopped, write_chunk
from stream.worker.faust_app import RawTable, raw_table
from stream.worker.recovery import complete_recovery_table_manager

END = 100  # the measured end of the changelog partition under test


def setup(tmp_path: Path, store: str = "rocksdb://") -> tuple[RawTable, Any, TP]:
    settings = Settings(broker_url="kafka://127.0.0.1:1")
    app = faust.App(
        "test-recovery",
        broker=settings.faust_broker,
        store=store,
        datadir=str(tmp_path),
        TableManager=complete_recovery_table_manager(settings),
    )
    table = raw_table(app, "accounts", 2)
    recovery = app.tables.recovery
    tp = TP(table.changelog_topic.get_topic_name(), 0)
    recovery.tp_to_table[tp] = table
    recovery.active_tps.add(tp)
    recovery.active_highwaters[tp] = END - 1
    return table, recovery, tp


def restored(table: RawTable, key: bytes) -> bytes | None:
    return table.data._db_for_partition(0).get(key)  # type: ignore[no-any-return]


def chunk(c: Changelog, gate: Gate, offset: int, on_chunk: Any) -> None:
    c.buffer[f"key-{offset}".encode()] = f"value-{offset}".encode()
    c.unwritten = offset - c.written
    on_chunk(c, offset, write_chunk(c, offset, gate))


def test_the_bulk_phase_restores_and_moves_fausts_offsets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table, recovery, tp = setup(tmp_path)
    handed: list[tuple[int, int]] = []

    def reader(conf: Any, changelogs: list[Changelog], gate: Gate, deadline: float, on_chunk: Any) -> None:
        [c] = changelogs
        handed.append((c.start, c.end))
        chunk(c, gate, 49, on_chunk)
        chunk(c, gate, END - 1, on_chunk)
        c.finished = True

    monkeypatch.setattr(recovery_module, "restore_changelogs", reader)
    before = metrics.REGISTRY.get_sample_value("stream_recovery_restored_messages_total", {"table": "accounts"})
    offsets: Counter[TP] = Counter({tp: 9})  # restored up to offset 9 before

    async def run() -> None:
        await recovery._bulk({tp}, offsets, time.monotonic() + 10)
        await asyncio.sleep(0)  # the reader's progress callbacks

    asyncio.run(run())
    assert handed == [(10, END)]
    assert offsets[tp] == END - 1 and table.data.persisted_offset(tp) == END - 1
    assert restored(table, b"key-49") == b"value-49" and restored(table, b"key-99") == b"value-99"
    after = metrics.REGISTRY.get_sample_value("stream_recovery_restored_messages_total", {"table": "accounts"})
    assert after == (before or 0) + 90


def test_nothing_to_read_or_no_rocksdb_leaves_it_to_faust(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def reader(*_args: Any) -> None:
        raise AssertionError("the reader must not run")

    monkeypatch.setattr(recovery_module, "restore_changelogs", reader)
    _table, recovery, tp = setup(tmp_path / "done")
    asyncio.run(recovery._bulk({tp}, Counter({tp: END - 1}), time.monotonic() + 10))
    _table, recovery, tp = setup(tmp_path / "memory", store="memory://")
    offsets: Counter[TP] = Counter({tp: -1})
    asyncio.run(recovery._bulk({tp}, offsets, time.monotonic() + 10))
    assert offsets[tp] == -1


@pytest.mark.parametrize("stop", ["revoked", "cancelled"])
def test_a_rebalance_stops_the_reader_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop: str) -> None:
    table, recovery, tp = setup(tmp_path)
    first_chunk = threading.Event()
    closed = threading.Event()
    refused: list[int] = []
    close = Gate.close

    def close_and_signal(gate: Gate) -> None:
        close(gate)
        closed.set()

    monkeypatch.setattr(Gate, "close", close_and_signal)

    def reader(conf: Any, changelogs: list[Changelog], gate: Gate, deadline: float, on_chunk: Any) -> None:
        [c] = changelogs
        chunk(c, gate, 19, on_chunk)
        first_chunk.set()
        assert closed.wait(10), "the gate was never closed"
        try:
            chunk(c, gate, 39, on_chunk)  # too late: the gate is closed
        except Stopped:
            refused.append(39)

    monkeypatch.setattr(recovery_module, "restore_changelogs", reader)
    offsets: Counter[TP] = Counter({tp: -1})

    async def run() -> None:
        task = asyncio.ensure_future(recovery._bulk({tp}, offsets, time.monotonic() + 10))
        assert await asyncio.to_thread(first_chunk.wait, 10), "the reader wrote no chunk"
        if stop == "revoked":
            recovery.on_partitions_revoked(set())  # the start of a rebalance
            await asyncio.wait_for(task, 5)
        else:
            task.cancel()  # what Faust does to the step on a rebalance or a stop
            with pytest.raises(asyncio.CancelledError):
                await task
        recovery._bulk_executor.shutdown(wait=True)

    asyncio.run(run())
    assert refused == [39]
    assert table.data.persisted_offset(tp) == 19 and restored(table, b"key-39") is None
    if stop == "revoked":  # the step ended normally: Faust goes on from what was written
        assert offsets[tp] == 19
