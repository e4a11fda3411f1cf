"""Processing messages in batches without breaking Faust's table semantics.

Faust's per-message machinery costs far more than the core's rules, so agents
take batches of events (``take_events`` acks them only after the batch is
processed: at-least-once holds) and internal topics carry packed envelopes (one
message per destination partition per batch).

Table reads and writes pick their partition from Faust's "current event"
context. A batch mixes partitions, so each partition's share is processed with
the context pinned to one of its own events (:func:`in_partition_of`); every
account and user touched is written once per batch, inside that context.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from faust.streams import _current_event
from faust.types import EventT

from stream.core.envelope import Envelope
from stream.core.partitioning import partition_for

log = logging.getLogger("stream.worker")

PACKED_PREFIX = b'{"calls":'
#: How far each lane has got, sent downstream after every batch.
PROGRESS_PREFIX = b'{"progress":'
#: A packed message stays under this many bytes (Kafka's and Faust's producer
#: limit is 1 MB by default): a batch of Segment batch envelopes can carry far
#: more calls for one partition than that, so it is sent as several messages.
PACK_MAX_BYTES = 64 * 1024


@contextlib.contextmanager
def in_partition_of(event: EventT[Any]) -> Iterator[None]:
    """Table reads and writes in this block go to ``event``'s partition."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def by_partition(events: Sequence[EventT[Any]]) -> dict[int, list[EventT[Any]]]:
    """Events grouped by partition, each group in its original order."""
    groups: dict[int, list[EventT[Any]]] = defaultdict(list)
    for event in events:
        groups[event.message.partition].append(event)
    return groups


def byte_bounded(events: Sequence[EventT[Any]], max_bytes: int) -> list[tuple[int, int]]:
    """``[start, end)`` ranges of ``events`` in order, each holding at most
    ``max_bytes`` of message values (and at least one event, however large).

    What a batch holds in memory until it is stored grows with the calls it
    touches, which the bytes of its packed messages measure and their number
    does not (a packed message of single calls holds a few, one of Segment
    batch envelopes up to 64 KB of them)."""
    ranges: list[tuple[int, int]] = []
    start, size = 0, 0
    for i, event in enumerate(events):
        n = len(event.value) if event.value is not None else 0
        if i > start and size + n > max_bytes:
            ranges.append((start, i))
            start, size = i, 0
        size += n
    if start < len(events):
        ranges.append((start, len(events)))
    return ranges


def pack(envelopes: list[Envelope], max_bytes: int = PACK_MAX_BYTES) -> list[bytes]:
    """The envelopes as packed messages, in order, each under ``max_bytes``
    (unless one envelope alone is larger: it then travels alone)."""
    dumps = orjson.dumps
    out: list[bytes] = []
    chunk: list[bytes] = []
    size = 0
    for env in envelopes:
        item = dumps(env.to_row())
        if chunk and size + len(item) + 1 > max_bytes - 16:
            out.append(PACKED_PREFIX + b"[" + b",".join(chunk) + b"]}")
            chunk, size = [], 0
        chunk.append(item)
        size += len(item) + 1
    if chunk:
        out.append(PACKED_PREFIX + b"[" + b",".join(chunk) + b"]}")
    return out


def unpack(value: bytes) -> list[Envelope]:
    from_wire = Envelope.from_wire
    return [from_wire(item) for item in orjson.loads(value)["calls"]]


def each_call(value: bytes, outbox: Outbox, apply: Callable[[Envelope], None]) -> None:
    """Apply each call of a packed message. A call that fails unexpectedly goes
    to the DLQ alone (``processing_error``); what earlier calls of the batch did
    stays, since dropping it would lose them."""
    for env in unpack(value):
        try:
            apply(env)
        except Exception as exc:
            log.error("processing error on a call of %r/%r: %r", env.account_id, env.user_id, exc, exc_info=exc)
            outbox.dead_envelopes.append(("processing_error", type(exc).__name__, env))


@dataclass
class DeadLetter:
    reason: str
    detail: str
    value: bytes
    key: bytes | None
    topic: str
    partition: int
    offset: int
    index: int | None


@dataclass
class Outbox:
    """What a batch sends, gathered while it is processed and sent after it."""

    partitions: int
    to_accounts: dict[int, list[Envelope]] = field(default_factory=lambda: defaultdict(list))
    to_users: dict[int, list[Envelope]] = field(default_factory=lambda: defaultdict(list))
    records: list[dict[str, Any]] = field(default_factory=list)
    triggers: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    #: lane -> progress (highest event time) to tell every downstream partition
    progress: dict[str, int] = field(default_factory=dict)
    dead: list[DeadLetter] = field(default_factory=list)
    dead_envelopes: list[tuple[str, str, Envelope]] = field(default_factory=list)
    #: envelopes in ``to_accounts`` and ``to_users``
    calls: int = 0

    def add(self, produced: Any) -> None:
        """Take a core step's output records (a ``Produced``)."""
        self.records += produced.records
        self.triggers += produced.triggers
        self.alerts += produced.alerts

    def advance(self, lane: str, ts: int) -> None:
        if ts > self.progress.get(lane, 0):
            self.progress[lane] = ts

    def to_account(self, env: Envelope) -> None:
        self.to_accounts[partition_for(env.account_id, self.partitions)].append(env)
        self.calls += 1

    def to_user(self, env: Envelope) -> None:
        self.to_users[partition_for(env.user_id, self.partitions)].append(env)
        self.calls += 1
