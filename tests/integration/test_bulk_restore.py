"""The bulk restore reader against the embedded broker: it writes what Faust's
recovery would (last value per key, tombstones delete, the persisted offset),
consistently after every chunk, to the measured end and no further."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from rocksdict import Options, Rdict

from stream.broker import EmbeddedBroker
from stream.kafka_admin import measured_end_offsets
from stream.worker import bulk_restore
from stream.worker.bulk_restore import Changelog, Gate, restore_changelogs

OFFSET_KEY = b"__faust\0offset__"
_topics = itertools.count()


def changelog_messages() -> list[tuple[bytes, bytes | None]]:
    """Overwrites, tombstones, a key deleted then written again, an empty value."""
    out: list[tuple[bytes, bytes | None]] = [(f"k{i:03d}".encode(), f"v{i}-0".encode()) for i in range(60)]
    out += [(f"k{i:03d}".encode(), f"v{i}-1".encode()) for i in range(0, 60, 3)]
    out += [(f"k{i:03d}".encode(), None) for i in range(0, 60, 5)]
    out += [(b"k010", b"back"), (b"k001", b""), (b"k059", None)]
    return out


def publish(broker: EmbeddedBroker, messages: list[tuple[bytes, bytes | None]]) -> str:
    """A topic of 2 partitions, ``messages`` on partition 0 in few multi-record
    batches (the embedded broker under-reports such a partition's end)."""
    topic = f"bulk-restore-{next(_topics)}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result()
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 100})
    for key, value in messages:
        producer.produce(topic, key=key, value=value, partition=0)
    assert producer.flush(30) == 0
    return topic


def replay(messages: list[tuple[bytes, bytes | None]]) -> dict[bytes, bytes]:
    state: dict[bytes, bytes] = {}
    for key, value in messages:
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value
    return state


def open_db(path: Path) -> Rdict:
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    return Rdict(str(path), options=options)


def content(db: Rdict) -> tuple[dict[bytes, bytes], int | None]:
    data = dict(db.items())
    offset = data.pop(OFFSET_KEY, None)
    return data, None if offset is None else int(offset)


def run(broker: EmbeddedBroker, topic: str, db: Rdict, start: int, end: int, gate: Gate | None = None, **kw):
    chunks: list[tuple[int, int]] = []
    changelog = Changelog(topic, 0, start, end, db, OFFSET_KEY, table="t")
    restore_changelogs(
        {"bootstrap.servers": broker.bootstrap},
        [changelog],
        gate or Gate(),
        kw.pop("deadline", time.monotonic() + 60),
        kw.pop("on_chunk", lambda c, offset, n: chunks.append((offset, n))),
        **kw,
    )
    return changelog, chunks


def measured_end(broker: EmbeddedBroker, topic: str) -> int:
    return measured_end_offsets({"bootstrap.servers": broker.bootstrap}, {(topic, 0): 1})[(topic, 0)]


def test_restores_what_faust_would_up_to_the_measured_end(broker: EmbeddedBroker, tmp_path: Path):
    messages = changelog_messages()
    topic = publish(broker, messages)
    end = measured_end(broker, topic)
    assert end == len(messages)
    db = open_db(tmp_path / "p0.db")
    db[b"stale"] = b"written by nobody in the changelog"  # a restore never deletes what it does not read
    changelog, chunks = run(broker, topic, db, 0, end)
    data, offset = content(db)
    assert data == {**replay(messages), b"stale": b"written by nobody in the changelog"}
    assert data[b"k001"] == b"" and b"k005" not in data and data[b"k010"] == b"back"
    assert offset == end - 1 and changelog.written == end - 1 and changelog.finished
    assert chunks == [(end - 1, len(messages))]


def test_resumes_from_a_restored_offset_and_stops_at_the_end(broker: EmbeddedBroker, tmp_path: Path):
    messages = changelog_messages()
    topic = publish(broker, messages)
    end = measured_end(broker, topic)
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for key in (b"k002", b"k900"):  # after the measured end: left to Faust's recovery
        producer.produce(topic, key=key, value=b"after the end", partition=0)
    assert producer.flush(30) == 0
    db = open_db(tmp_path / "p0.db")
    for key, value in replay(messages[:40]).items():  # restored up to offset 39 before
        db[key] = value
    db[OFFSET_KEY] = b"39"
    _changelog, chunks = run(broker, topic, db, 40, end)
    assert content(db) == (replay(messages), end - 1)
    assert sum(n for _offset, n in chunks) == len(messages) - 40


def test_every_chunk_is_consistent_and_a_closed_gate_writes_nothing(
    broker: EmbeddedBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    messages = changelog_messages()
    topic = publish(broker, messages)
    end = measured_end(broker, topic)
    monkeypatch.setattr(bulk_restore, "FLUSH_MESSAGES", 7)
    gate = Gate()
    seen: list[tuple[int, dict[bytes, bytes], int | None]] = []

    def on_chunk(c: Changelog, offset: int, n: int) -> None:
        seen.append((offset, *content(c.db)))
        if len(seen) == 3:
            gate.close()  # as a rebalance does: no write after this

    db = open_db(tmp_path / "p0.db")
    changelog, _ = run(broker, topic, db, 0, end, gate=gate, on_chunk=on_chunk)
    assert len(seen) == 3 and not changelog.finished
    for offset, data, persisted in seen:
        assert persisted == offset and data == replay(messages[: offset + 1])
    assert content(db) == (seen[-1][1], seen[-1][0])
    # Faust's recovery (or the next bulk phase) goes on from the persisted offset
    rest, _ = run(broker, topic, db, seen[-1][0] + 1, end)
    assert content(db) == (replay(messages), end - 1) and rest.finished


def test_out_of_time_it_writes_what_it_read_and_stops(broker: EmbeddedBroker, tmp_path: Path):
    topic = publish(broker, changelog_messages())
    db = open_db(tmp_path / "p0.db")
    changelog, chunks = run(broker, topic, db, 0, measured_end(broker, topic), deadline=time.monotonic() - 1)
    assert not changelog.finished and chunks == [] and content(db) == ({}, None)


def test_an_empty_or_restored_partition_is_not_read(broker: EmbeddedBroker, tmp_path: Path):
    topic = publish(broker, changelog_messages())
    db = open_db(tmp_path / "p1.db")
    changelog, chunks = run(broker, topic, db, 0, 0)
    assert chunks == [] and content(db) == ({}, None) and not changelog.finished
