"""Hostile input: a deterministic mix of every kind of bad message producers
can send, and Segment batches mixing good and bad calls.

Used by the reliability tests: every bad record must reach the DLQ with a
reason, every good call (even in a batch full of bad ones) must be applied, and
nothing may stop a worker. Kinds of bad messages: broken JSON, invalid UTF-8,
JSON that is not an object, wrong types, wrong keys, NUL and control
characters, huge strings and arrays, deep nesting, timestamps far in the past
or future, unknown call types, missing ids, oversize messages and batches.

Good calls are ``group`` calls and ``track`` calls naming their account
(``context.groupId`` or ``groupId``), for accounts ``hostile-acct-<seed>-…``
that no other workload uses; each is one account update, so the applied count
of a run over these messages alone equals :attr:`HostileCorpus.good_calls`.
Their ``messageId`` starts with :data:`GOOD_ID_PREFIX`, and nothing else in
the messages does, so :func:`count_good_calls` finds them in any subset.
Their content is odd but valid: Unicode and markup in names, NUL bytes,
deep nesting and long arrays inside ``properties``, every timestamp form, and
Kafka keys that are missing, empty, binary or unrelated to the account.

The counts assume the consumer decodes with the limits passed here
(``max_message_bytes``, ``max_batch_events``) and with each message's broker
timestamp at or after ``broker_ms`` (and less than two days after it): calls
dated three days or more after ``broker_ms`` are bad only relative to the
broker's clock. A good call is applied, not ``late``, only if its input
partition has not gone past ``now_ms`` by more than the allowed lateness:
messages with good calls (``count_good_calls([m]) > 0``) belong after, or
instead of, a workload dated before ``now_ms``. Oversize messages are bad in themselves too, so a consumer with a larger
``max_message_bytes`` still rejects each of them once (with another reason).

Layout: :mod:`~stream.hostile.generator` holds the state every message draws
from (the seeded random source, ids, accounts, Kafka keys) and the good calls;
:mod:`~stream.hostile.families` the families of bad calls and bad messages,
and the batches mixing good and bad calls; :mod:`~stream.hostile.corpus` the
weighted mix of kinds, the counts, and the functions below. The split follows
the dependencies (families build on the generator, the mix only picks and
counts), and moved code only: the same arguments give the same bytes.
"""

from __future__ import annotations

from stream.hostile.corpus import KINDS, count_good_calls, hostile_corpus, hostile_messages
from stream.hostile.generator import (
    ACCOUNT_PREFIX,
    BAD_ID_PREFIX,
    DEFAULT_MAX_BATCH_EVENTS,
    DEFAULT_MAX_MESSAGE_BYTES,
    GOOD_ID_PREFIX,
    MIN_MESSAGE_BYTES,
    HostileCorpus,
    Message,
)

__all__ = [
    "ACCOUNT_PREFIX",
    "BAD_ID_PREFIX",
    "DEFAULT_MAX_BATCH_EVENTS",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "GOOD_ID_PREFIX",
    "KINDS",
    "MIN_MESSAGE_BYTES",
    "HostileCorpus",
    "Message",
    "count_good_calls",
    "hostile_corpus",
    "hostile_messages",
]
