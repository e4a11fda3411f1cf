"""The families of bad messages: every way a call or a message can be wrong.

One method per family, each taking its variants in turn so that all of them
appear: bad calls (wrong types and keys, NUL bytes, huge strings and arrays,
deep nesting, bad timestamps, unknown types, missing ids), each usable as a
message of its own or as a batch item (:data:`CALL_BUILDERS`); bad messages
(broken JSON, invalid UTF-8, not an object, oversize, bad batches); and the
batches mixing good and bad calls. They draw from the state kept by
:class:`stream.hostile.generator._GeneratorBase`; how often each kind appears
and what is counted is the business of :mod:`stream.hostile.corpus`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stream.hostile.generator import BAD_ID_PREFIX, MS_PER_DAY, Doc, _deep_bytes, _GeneratorBase, _iso, _with_raw


class _Generator(_GeneratorBase):
    """The whole generator: its state and good calls, and every bad family."""

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
