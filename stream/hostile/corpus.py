"""The hostile corpus: the weighted mix of message kinds and the counts.

:func:`hostile_corpus` picks a kind per message (one of each first, then by
weight), asks :mod:`stream.hostile.families` for its bytes and
:mod:`stream.hostile.generator` for its Kafka key, and counts the good calls
and bad records each kind contributes (:data:`KINDS`). This is the only
module that knows the mix, so the families stay free of counting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from stream.hostile.families import CALL_BUILDERS, _Generator
from stream.hostile.generator import (
    DEFAULT_MAX_BATCH_EVENTS,
    DEFAULT_MAX_MESSAGE_BYTES,
    GOOD_ID_PREFIX,
    MIN_MESSAGE_BYTES,
    HostileCorpus,
    Message,
)


def hostile_messages(
    count: int,
    seed: int = 0,
    *,
    now_ms: int | None = None,
    broker_ms: int | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    max_batch_events: int = DEFAULT_MAX_BATCH_EVENTS,
) -> list[Message]:
    """``count`` hostile (key, value) messages; see :func:`hostile_corpus`."""
    return hostile_corpus(
        count,
        seed,
        now_ms=now_ms,
        broker_ms=broker_ms,
        max_message_bytes=max_message_bytes,
        max_batch_events=max_batch_events,
    ).messages


def hostile_corpus(
    count: int,
    seed: int = 0,
    *,
    now_ms: int | None = None,
    broker_ms: int | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    max_batch_events: int = DEFAULT_MAX_BATCH_EVENTS,
) -> HostileCorpus:
    """``count`` hostile messages with the good and bad record counts.

    Same arguments, same bytes. Good calls are dated in the hour before
    ``now_ms`` (default: the wall clock, read once: pass it for byte-identical
    output); ``broker_ms`` (default ``now_ms``) is the earliest broker timestamp
    the messages will get, what "too far in the future" is relative to. Give
    both when the good calls must fit another stream's event time (e.g. a
    workload of last month published now).
    The first ``len(KINDS)`` messages are one of each kind, the rest a
    weighted mix; within a kind, variants are taken in turn, so every variant
    appears once a kind has had as many messages as it has variants.
    """
    if max_message_bytes < MIN_MESSAGE_BYTES:
        raise ValueError(f"max_message_bytes must be at least {MIN_MESSAGE_BYTES} (a batch of good calls must fit)")
    if now_ms is None:
        now_ms = int(datetime.now(tz=UTC).timestamp() * 1000)
    gen = _Generator(seed, now_ms, now_ms if broker_ms is None else broker_ms, max_message_bytes, max_batch_events)
    names = list(KINDS)
    weights = [KINDS[k][1] for k in names]
    for i in range(count):
        kind = names[i] if i < len(names) else gen.rng.choices(names, weights)[0]
        gen.corpus.kinds[kind] += 1
        value = KINDS[kind][0](gen)
        gen.corpus.messages.append((gen.key(), value))
    gen.corpus.accounts = tuple(gen.accounts)
    return gen.corpus


def count_good_calls(messages: Iterable[Message | bytes]) -> int:
    """Good calls in ``messages`` (values, or (key, value) pairs): each is
    applied once when they are consumed (see :mod:`stream.hostile`)."""
    needle = f'"messageId":"{GOOD_ID_PREFIX}'.encode()
    total = 0
    for message in messages:
        value = message[1] if isinstance(message, tuple) else message
        total += value.count(needle)
    return total


def _single(build: Callable[[_Generator], Any]) -> Callable[[_Generator], bytes]:
    def message(gen: _Generator) -> bytes:
        gen.corpus.bad_records += 1
        return gen.single(build)

    return message


def _raw(build: Callable[[_Generator], bytes]) -> Callable[[_Generator], bytes]:
    def message(gen: _Generator) -> bytes:
        gen.corpus.bad_records += 1
        return build(gen)

    return message


def _mixed(gen: _Generator) -> bytes:
    value, good, bad = gen.mixed_batch()
    gen.corpus.good_calls += good
    gen.corpus.bad_records += bad
    return value


#: Message kind -> (builder, weight in the mix).
KINDS: dict[str, tuple[Callable[[_Generator], bytes], int]] = {
    "broken_json": (_raw(_Generator.broken_json), 8),
    "invalid_utf8": (_raw(_Generator.invalid_utf8), 7),
    "not_object": (_raw(_Generator.not_object), 5),
    "too_large": (_raw(_Generator.too_large), 1),
    "batch_too_large": (_raw(_Generator.batch_too_large), 1),
    "batch_not_array": (_raw(_Generator.batch_not_array), 2),
    **{kind: (_single(build), 7) for kind, build in CALL_BUILDERS.items()},
    "mixed_batch": (_mixed, 15),
}
