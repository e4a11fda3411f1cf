"""The generator's state and the good calls of the hostile corpus.

Everything every message draws from lives here: the constants (id prefixes,
limits, accounts), the encoding helpers (timestamps, nesting, raw bytes deeper
than orjson writes), and :class:`_GeneratorBase`, which holds the one seeded
random source, the per-variant turns, the serial ids, the accounts and the
Kafka keys. Good calls are here too: they are what the bad families break
(:mod:`stream.hostile.families`) and what the mixed batches carry, so both
build on this module and it depends on neither.

Split out of the former single ``stream/hostile.py`` without changing a draw:
the same arguments give the same bytes.
"""

from __future__ import annotations

import math
import random
from collections import Counter
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


class _GeneratorBase:
    """The generator's state, its helpers and the good calls; the bad
    families are added by :class:`stream.hostile.families._Generator`."""

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
