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
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson

GOOD_ID_PREFIX = "hostile-good-"
BAD_ID_PREFIX = "hostile-bad-"
ACCOUNT_PREFIX = "hostile-acct-"
#: Messages stay under twice this size (the oversize ones are between 1x and 2x).
DEFAULT_MAX_MESSAGE_BYTES = 32 * 1024
DEFAULT_MAX_BATCH_EVENTS = 1_000
MIN_MESSAGE_BYTES = 16 * 1024
#: Good calls are dated within this long before ``now_ms`` (well inside any lateness).
GOOD_SPREAD_MS = 3_600_000
ACCOUNTS = 8
USERS_PER_ACCOUNT = 6

MS_PER_DAY = 86_400_000

Doc = dict[str, Any]
Message = tuple[bytes | None, bytes]

#: Track event names of good calls: milestone events, unknown ones, odd ones.
EVENT_NAMES = (
    "Logged In",
    "Report Created",
    "Report Shared",
    "Data Source Connected",
    "AI Edit Applied",
    "Hostile Unknown Event",
    "Ünïcødé 🚀 Évènement",
    "e" * 200,  # the longest name the schema accepts
    'with "quotes" and \\ backslash',
    "<script>alert(1)</script>",
    "'; DROP TABLE users;--",
    "\u202eright-to-left\u200b",
)


@dataclass(slots=True)
class HostileCorpus:
    #: (key, value) Kafka messages, in the order to publish them.
    messages: list[Message] = field(default_factory=list)
    #: Calls that must be applied: one account update each.
    good_calls: int = 0
    #: Records that must reach the DLQ: one per bad message, and one per bad
    #: item of a batch that is decoded item by item.
    bad_records: int = 0
    #: Messages generated per kind (see :data:`KINDS`).
    kinds: Counter[str] = field(default_factory=Counter)
    #: Accounts the good calls go to.
    accounts: tuple[str, ...] = ()


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
    applied once when they are consumed (see the module docstring)."""
    needle = f'"messageId":"{GOOD_ID_PREFIX}'.encode()
    total = 0
    for message in messages:
        value = message[1] if isinstance(message, tuple) else message
        total += value.count(needle)
    return total


def _iso(ms: int, offset_minutes: int = 0) -> str:
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    if not offset_minutes:
        return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return dt.astimezone(timezone(timedelta(minutes=offset_minutes))).isoformat(timespec="milliseconds")


def _nest(depth: int, leaf: Any, in_objects: bool = False) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"n": value} if in_objects else [value]
    return value


#: Stands for a value written as raw bytes (deeper than orjson writes).
_PLACEHOLDER = "@@hostile-raw@@"


def _with_raw(doc: Doc, key: str, raw: bytes) -> bytes:
    """``doc`` as JSON with ``raw`` as the value of ``key`` (top level)."""
    doc[key] = _PLACEHOLDER
    return orjson.dumps(doc).replace(f'"{_PLACEHOLDER}"'.encode(), raw, 1)


def _deep_bytes(depth: int, leaf: Any, in_objects: bool = False) -> bytes:
    head, tail = (b'{"n":', b"}") if in_objects else (b"[", b"]")
    return head * depth + orjson.dumps(leaf) + tail * depth


class _Generator:
    def __init__(self, seed: int, now_ms: int, broker_ms: int, max_message_bytes: int, max_batch_events: int) -> None:
        self.rng = random.Random(f"hostile:{seed}")
        self.seed = seed
        self.now_ms = now_ms
        self.broker_ms = broker_ms
        self.max_bytes = max_message_bytes
        self.max_batch = max_batch_events
        #: Bytes a huge string or array takes at most (less inside batches).
        self.huge_cap = max_message_bytes // 2
        self.corpus = HostileCorpus()
        self.serial = 0
        self.turns: Counter[str] = Counter()
        self.accounts = [f"{ACCOUNT_PREFIX}{seed}-{k:02d}" for k in range(ACCOUNTS - 1)]
        # ids are anything the schema accepts: Unicode and URL-special characters too
        self.accounts.append(f"{ACCOUNT_PREFIX}{seed}-ünï 🚀 ?&%=+")
        self.last_account = self.accounts[0]

    # ------------------------------------------------------------ helpers

    def size(self, low: int, high: int) -> int:
        """A size in [low, high), log-uniform: mostly small, sometimes large
        (so the corpus stays quick to publish)."""
        if high <= low + 1:
            return low
        return min(high - 1, int(math.exp(self.rng.uniform(math.log(low), math.log(high)))))

    def turn(self, name: str, n: int) -> int:
        """The next variant of ``name`` (taken in turn, so all of them appear)."""
        self.turns[name] += 1
        return (self.turns[name] - 1) % n

    def message_id(self, good: bool) -> str:
        self.serial += 1
        return f"{GOOD_ID_PREFIX if good else BAD_ID_PREFIX}{self.seed}-{self.serial:07d}"

    def account(self) -> str:
        self.last_account = self.rng.choice(self.accounts)
        return self.last_account

    def user(self, account: str) -> str:
        return f"{account}-u{self.rng.randrange(USERS_PER_ACCOUNT)}"

    def good_ts(self) -> int:
        return self.now_ms - self.rng.randrange(GOOD_SPREAD_MS)

    def key(self) -> bytes | None:
        choice = self.rng.randrange(10)
        if choice == 0:
            return None
        if choice == 1:
            return b""
        if choice == 2:
            return b"\xff\x00\xfe" + self.rng.randbytes(self.rng.randrange(1, 16))
        if choice == 3:
            return b"k" * 300
        return self.last_account.encode()

    def dump(self, doc: Any) -> bytes:
        return orjson.dumps(doc)

    # --------------------------------------------------------- good calls

    def good_call(self) -> Doc:
        account = self.account()
        user = self.user(account)
        if self.rng.random() < 0.25:
            return {
                "type": "group",
                "messageId": self.message_id(True),
                "userId": user,
                "groupId": account,
                "timestamp": _iso(self.good_ts()),
                "traits": {
                    "plan": self.rng.choice(["trial", "business", "énterprise 🚀"]),
                    "seats": self.rng.randrange(0, 10_000),
                    "name": "Acme <b>&amp;</b> \u0000 Co",
                    "createdAt": _iso(self.now_ms - 30 * MS_PER_DAY),
                    "unused": _nest(50, "deep"),
                },
            }
        doc: Doc = {
            "type": "track",
            "messageId": self.message_id(True),
            "userId": user,
            "event": self.rng.choice(EVENT_NAMES),
            "properties": self.good_properties(),
        }
        if self.rng.random() < 0.2:
            doc["groupId"] = account
        else:
            doc["context"] = {"groupId": account, "library": {"name": "hostile", "version": "0"}}
        ts = self.good_ts()
        # without a timestamp, the broker's dates the call: only when that is now_ms
        form = self.turn("good_ts", 6 if self.broker_ms == self.now_ms else 5)
        if form == 0:
            doc["timestamp"] = _iso(ts)
        elif form == 1:
            doc["timestamp"] = _iso(ts, offset_minutes=330)
        elif form == 2:
            doc["timestamp"] = _iso(ts).rstrip("Z")  # no offset: UTC
        elif form == 3:
            doc["originalTimestamp"] = _iso(ts)
        elif form == 4:
            doc["receivedAt"] = _iso(ts, offset_minutes=-480)
        # form 5: no timestamp at all, the broker's is used
        return doc

    def good_properties(self) -> Any:
        form = self.turn("good_props", 9)
        if form == 0:
            return {}
        if form == 1:
            return {"plan": "pro", "n": 3, "f": 1.5, "b": True, "z": -0.0, "big": 2**63 - 1, "small": -(2**63)}
        if form == 2:
            return {"note": "a\u0000b\u001fc", "nul\u0000key": "x"}
        if form == 3:
            return {"ü": "🚀", "rtl": "\u202e", "channel": "email"}
        if form == 4:
            return {"deep": _nest(self.rng.randrange(50, 200), 1), "deep_obj": _nest(100, "x", in_objects=True)}
        if form == 5:
            return {"blob": "x" * self.size(100, 2_000), "arr": list(range(self.size(10, 300)))}
        if form == 6:
            return {f"k{i}": i for i in range(self.rng.randrange(33, 256))}
        if form == 7:
            return {"none": None, "list": [None, {"a": []}], "float": 1e308}
        return {"channel": self.rng.choice(["email", "slack", "link"])}

    # ---------------------------------------------------------- bad calls

    def bad_base(self, kind: str = "track") -> Doc:
        """A call that would be good, with a bad-prefixed messageId: each
        bad variant breaks it in exactly one way."""
        account = self.account()
        user = self.user(account)
        doc: Doc = {
            "type": kind,
            "messageId": self.message_id(False),
            "userId": user,
            "timestamp": _iso(self.good_ts()),
        }
        if kind == "track":
            doc["event"] = "Report Created"
            doc["context"] = {"groupId": account}
            doc["properties"] = {"channel": "email"}
        elif kind == "group":
            doc["groupId"] = account
            doc["traits"] = {"plan": "trial", "seats": 3}
        elif kind == "identify":
            doc["traits"] = {"role": "manager"}
        return doc

    def wrong_types(self) -> Doc:
        variants: list[tuple[str, str, Any]] = [
            ("track", "userId", 12345),
            ("track", "userId", 1.5),
            ("track", "userId", True),
            ("track", "userId", ["u"]),
            ("track", "userId", {"id": "u"}),
            ("track", "messageId", 7),
            ("track", "messageId", {"a": 1}),
            ("track", "event", 42),
            ("track", "event", None),
            ("track", "event", ["Report Created"]),
            ("track", "timestamp", self.now_ms),
            ("track", "timestamp", True),
            ("track", "timestamp", []),
            ("track", "properties", "channel=email"),
            ("track", "properties", [1, 2]),
            ("track", "context", "acct"),
            ("track", "context", {"groupId": 5}),
            ("track", "context", {"groupId": ["a"]}),
            ("track", "groupId", 99),
            ("identify", "traits", {"role": 5}),
            ("identify", "traits", "role=manager"),
            ("group", "traits", {"seats": -1}),
            ("group", "traits", {"seats": "ten", "plan": 7}),
            ("group", "traits", [1, 2]),
            ("group", "groupId", 1234),
        ]
        kind, key, value = variants[self.turn("wrong_types", len(variants))]
        doc = self.bad_base(kind)
        doc[key] = value
        return doc

    def wrong_keys(self) -> Doc:
        variants = [
            ("track", "userId", "user_id"),
            ("group", "userId", "UserId"),
            ("identify", "userId", "userid"),
            ("track", "messageId", "messageID"),
            ("track", "event", "Event"),
            ("track", "event", "event_name"),
            ("track", "type", "Type"),
            ("group", "type", "TYPE"),
            ("group", "groupId", "group_id"),
        ]
        kind, old, new = variants[self.turn("wrong_keys", len(variants))]
        doc = self.bad_base(kind)
        doc[new] = doc.pop(old)
        return doc

    def nul_bytes(self) -> Doc:
        doc = self.bad_base("track")
        variants: list[Callable[[Doc], None]] = [
            lambda d: d.update(userId="u\u0000x"),
            lambda d: d.update(messageId=f"{BAD_ID_PREFIX}\u0000"),
            lambda d: d.update(event="Report\u0000Created"),
            lambda d: d.update(event="Report\nCreated"),
            lambda d: d.update(context={"groupId": "acct\u0000"}),
            lambda d: d.update(userId="\u001f"),
            lambda d: d.update(type="track\u0000"),
            lambda d: d.update(anonymousId="a\u0000", userId=None),
        ]
        variants[self.turn("nul_bytes", len(variants))](doc)
        return doc

    def huge_strings(self) -> Doc:
        n = self.size(257, max(258, min(self.huge_cap // 2, 20_000)))
        variants = [
            ("track", "userId", "u" * n),
            ("track", "messageId", "m" * n),
            ("track", "event", "e" * n),
            ("track", "timestamp", "2026-01-01T00:00:00" + "0" * n),
            ("track", "context", {"groupId": "g" * n}),
            ("group", "groupId", "g" * n),
            ("group", "traits", {"plan": "p" * n}),
            ("group", "traits", {"name": "n" * n}),
            ("identify", "traits", {"role": "r" * n}),
        ]
        kind, key, value = variants[self.turn("huge_strings", len(variants))]
        doc = self.bad_base(kind)
        doc[key] = value
        return doc

    def huge_arrays(self) -> Doc:
        budget = max(self.huge_cap, 2_000)  # bytes the array may take
        variants: list[tuple[str, Callable[[], list[Any]]]] = [
            ("userId", lambda: list(range(self.size(100, budget // 7)))),
            ("event", lambda: ["Report Created"] * self.size(10, budget // 17)),
            ("properties", lambda: [0] * self.size(100, budget // 2)),
            ("context", lambda: [{"groupId": "a"}] * self.size(10, budget // 16)),
            ("messageId", lambda: [BAD_ID_PREFIX] * self.size(10, budget // 16)),
        ]
        key, value = variants[self.turn("huge_arrays", len(variants))]
        doc = self.bad_base("track")
        doc[key] = value()
        return doc

    def deep_call(self) -> bytes:
        """A field nested up to 600 deep (orjson writes 254 levels, reads 1024)."""
        depth = self.rng.randrange(20, 600)
        variants = [
            ("track", "userId", _deep_bytes(depth, "u")),
            ("track", "event", _deep_bytes(depth, "Report Created", in_objects=True)),
            ("track", "timestamp", _deep_bytes(depth, "2026-01-01T00:00:00Z")),
            ("identify", "traits", b'{"role":' + _deep_bytes(depth, "manager") + b"}"),
            ("group", "groupId", _deep_bytes(depth, "acct", in_objects=True)),
        ]
        kind, key, raw = variants[self.turn("deep_call", len(variants))]
        return _with_raw(self.bad_base(kind), key, raw)

    def bad_timestamp(self) -> Doc:
        future = self.broker_ms + self.rng.randrange(3 * MS_PER_DAY, 365 * MS_PER_DAY)
        stamps = [
            "not a timestamp at all",
            "2026-02-30T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-01-01T25:61:00Z",
            "1999-12-31T23:59:59Z",
            "1970-01-01T00:00:00Z",
            "0001-01-01T00:00:00+14:00",
            "2100-01-01T00:00:00Z",
            "2150-06-01T00:00:00Z",
            "9999-12-31T23:59:59-14:00",
            _iso(future),
            _iso(future, offset_minutes=-600),
        ]
        n = self.turn("bad_timestamp", len(stamps) + 5)
        if n < len(stamps):
            doc = self.bad_base(self.rng.choice(["track", "group", "identify"]))
            doc["timestamp"] = stamps[n]
            return doc
        n -= len(stamps)
        doc = self.bad_base("track")
        bad = stamps[self.rng.randrange(len(stamps))]
        if n == 0:  # originalTimestamp is used when timestamp is absent
            del doc["timestamp"]
            doc["originalTimestamp"] = bad
        elif n == 1:  # and receivedAt after it
            del doc["timestamp"]
            doc["receivedAt"] = bad
        elif n == 2:
            doc["timestamp"] = "2026"  # shorter than any timestamp
        else:  # the base time of time-to-activate, far out
            doc = self.bad_base("group" if n == 3 else "identify")
            doc["traits"]["createdAt"] = self.rng.choice(
                ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "1969-07-20T20:17:00Z", "2101-01-01T00:00Z"]
            )
        return doc

    def unknown_type(self) -> Doc:
        kinds: list[Any] = [
            "alias",
            "Track",
            "TRACK",
            "",
            "delete",
            "screenview",
            "batch",
            None,
            5,
            ["track"],
            {"type": "track"},
            "x" * 1000,
        ]
        doc = self.bad_base("track")
        doc["type"] = kinds[self.turn("unknown_type", len(kinds))]
        return doc

    def missing_id(self) -> Doc:
        n = self.turn("missing_id", 6)
        doc = self.bad_base(["track", "identify", "group", "track", "track", "page"][n])
        if n == 0:
            del doc["messageId"]
        elif n in (1, 4):
            del doc["userId"]
        elif n == 2:
            del doc["groupId"]
        elif n == 3:
            doc["userId"] = ""
        else:
            doc["userId"] = None
        return doc

    # ------------------------------------------------------ message kinds

    def broken_json(self) -> bytes:
        good_shape = self.dump(self.bad_base("track"))
        variants: list[Callable[[], bytes]] = [
            lambda: good_shape[: self.rng.randrange(1, len(good_shape) - 1)],
            lambda: good_shape + b"}",
            lambda: good_shape + b" trailing",
            lambda: good_shape.replace(b'"', b"'"),
            lambda: b'{"type":"track","n":NaN}',
            lambda: b'{"type":"track","n":1e400}',
            lambda: b'{"type":"track" /* comment */}',
            lambda: b'{"type":"track",}',
            lambda: b"",
            lambda: b"   \n\t ",
            lambda: b'{"type":"track","userId":"a\x00b"}',  # raw control character in a string
            lambda: b'{"type":"track"}\x00',
            lambda: b'{"type":"track","userId":"\\ud800"}',  # lone surrogate
            lambda: b'{"type":"track","userId":"\\udc00\\ud800"}',
            lambda: b"[" * (1025 + self.rng.randrange(3_000)) + b"]" * 1025,
            lambda: b'{"a":' * 1100 + b"1" + b"}" * 1100,  # deeper than JSON parsing allows
            lambda: bytes(self.rng.randrange(0x20, 0x7F) for _ in range(self.rng.randrange(1, 200))) + b"{",
        ]
        return variants[self.turn("broken_json", len(variants))]()

    def invalid_utf8(self) -> bytes:
        bad = [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\xf8\x88\x80\x80\x80", b"\x80", b"\xfe\xfe"]
        n = self.turn("invalid_utf8", len(bad) + 2)
        if n < len(bad):
            doc = self.bad_base("track")
            doc["userId"] = "@@BAD@@"
            return self.dump(doc).replace(b"@@BAD@@", b"u" + bad[n])
        if n == len(bad):  # a whole batch lost to one bad byte: one dead letter
            batch = {"batch": [self.bad_base("track") for _ in range(3)]}
            return self.dump(batch).replace(b"Report Created", b"Report \xff Created", 1)
        return b"\xff" + self.rng.randbytes(self.rng.randrange(1, 500))

    def not_object(self) -> bytes:
        variants: list[Any] = [
            [self.bad_base("track")],
            "a JSON string",
            42,
            None,
            True,
            [],
            1.5,
        ]
        return self.dump(variants[self.turn("not_object", len(variants))])

    def too_large(self) -> bytes:
        """Over ``max_message_bytes`` (under twice it), and bad on its own."""
        size = self.max_bytes + self.size(1, self.max_bytes - 8)
        n = self.turn("too_large", 4)
        if n == 1:
            return b"[" + b"0," * ((size - 2) // 2) + b"0]"  # not an object
        if n == 2:
            return b"x" * size  # not JSON
        doc = self.bad_base("track")
        if n == 0:
            key = "userId"  # an id the schema refuses
        else:
            doc["type"] = "alias"  # an unsupported call with a large property
            key = "properties"
        fixed = len(_with_raw(dict(doc), key, b'""'))
        return _with_raw(doc, key, b'"' + b"p" * max(1, size - fixed) + b'"')

    def batch_too_large(self) -> bytes:
        n = self.max_batch + 1 + self.rng.randrange(20)
        item: Any = [{}, {"type": "alias"}, 1][self.turn("batch_too_large", 3)]
        return self.dump({"batch": [item] * n})

    def batch_not_array(self) -> bytes:
        variants: list[Any] = [self.bad_base("track"), "calls", None, 5, {"0": {"type": "track"}}]
        return self.dump({"batch": variants[self.turn("batch_not_array", len(variants))]})

    def single(self, build: Callable[[_Generator], Any]) -> bytes:
        built = build(self)
        return built if isinstance(built, bytes) else self.dump(built)

    def mixed_batch(self) -> tuple[bytes, int, int]:
        """A batch of good and bad calls: (value, good calls, bad items)."""
        limit = min(self.max_batch, 16)
        want = self.rng.randrange(2, max(3, limit + 1))
        budget = int(self.max_bytes * 0.8) - 16
        items: list[bytes] = []
        good = bad = 0
        kinds = [*CALL_KINDS, "not_an_object"]
        self.huge_cap = 4_096
        for i in range(want):
            is_good = i == 0 or self.rng.random() < 0.5
            if is_good:
                doc = self.good_call()
                if doc["type"] == "track" and self.turn("deep_good", 6) == 0:
                    # properties nested deeper than orjson writes: fine, as in a message of its own
                    item = _with_raw(
                        doc, "properties", b'{"deep":' + _deep_bytes(self.rng.randrange(255, 900), 1) + b"}"
                    )
                else:
                    item = self.dump(doc)
            else:
                kind = self.rng.choice(kinds)
                if kind == "not_an_object":
                    item = self.dump(self.rng.choice([1, "call", None, [], True, [self.bad_base("track")]]))
                else:
                    item = self.single(CALL_BUILDERS[kind])
            if items and budget - len(item) - 1 < 0:
                break
            budget -= len(item) + 1
            items.append(item)
            good += is_good
            bad += not is_good
        self.huge_cap = self.max_bytes // 2
        return b'{"batch":[' + b",".join(items) + b"]}", good, bad


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


#: Bad calls, as a whole message or as a batch item.
CALL_BUILDERS: dict[str, Callable[[_Generator], Any]] = {
    "wrong_types": _Generator.wrong_types,
    "wrong_keys": _Generator.wrong_keys,
    "nul_bytes": _Generator.nul_bytes,
    "huge_strings": _Generator.huge_strings,
    "huge_arrays": _Generator.huge_arrays,
    "deep_nesting": _Generator.deep_call,
    "bad_timestamps": _Generator.bad_timestamp,
    "unknown_types": _Generator.unknown_type,
    "missing_ids": _Generator.missing_id,
}
CALL_KINDS = tuple(CALL_BUILDERS)

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

__all__ = [
    "ACCOUNT_PREFIX",
    "BAD_ID_PREFIX",
    "GOOD_ID_PREFIX",
    "KINDS",
    "HostileCorpus",
    "count_good_calls",
    "hostile_corpus",
    "hostile_messages",
]
