from __future__ import annotations

import orjson
import pytest

from stream.core.segment import DecodeLimits, Event, Rejection, decode_message

TRACK = {
    "type": "track",
    "messageId": "m1",
    "userId": "u1",
    "event": "Report Created",
    "timestamp": "2026-10-01T10:00:00Z",
    "context": {"groupId": "acme"},
    "properties": {"channel": "email", "big": "x" * 500, "nested": {"a": 1}, "n": 3},
}


def one(value: bytes, **kw) -> Event | Rejection:
    out = decode_message(value, **kw)
    assert len(out) == 1
    return out[0]


def test_track_with_context_group():
    ev = one(orjson.dumps(TRACK))
    assert isinstance(ev, Event)
    assert (ev.type, ev.user_id, ev.account_id, ev.event) == ("track", "u1", "acme", "Report Created")
    assert ev.timestamp_ms == 1_790_848_800_000
    # only short scalar properties are kept
    assert ev.properties == {"channel": "email", "n": 3}
    assert ev.raw is None


def test_track_without_account_keeps_its_bytes_for_the_dlq():
    doc = dict(TRACK)
    del doc["context"]
    ev = one(orjson.dumps(doc))
    assert isinstance(ev, Event) and ev.account_id is None
    assert orjson.loads(ev.raw) == doc


def test_group_and_identify_traits():
    g = one(
        b'{"type":"group","userId":"u","groupId":"g","timestamp":"2026-10-01T00:00:00+02:00",'
        b'"traits":{"plan":"trial","seats":5,"createdAt":"2026-09-01T00:00:00Z"}}'
    )
    assert isinstance(g, Event) and g.account_id == "g"
    assert g.traits == {"plan": "trial", "seats": 5, "created_at": 1_788_220_800_000}
    assert g.timestamp_ms == 1_790_805_600_000
    i = one(b'{"type":"identify","userId":"u","timestamp":"2026-10-01T00:00:00Z","traits":{"role":"Executive"}}')
    assert isinstance(i, Event) and i.traits == {"role": "executive"}


def test_identify_names_its_account_in_context_or_at_the_top():
    for doc in ({"context": {"groupId": "acme"}}, {"groupId": "acme"}):
        ev = one(orjson.dumps({"type": "identify", "userId": "u", "timestamp": "2026-10-01T00:00:00Z", **doc}))
        assert isinstance(ev, Event) and ev.account_id == "acme"


def test_a_view_names_no_account_whatever_it_carries():
    for group_id in ("acme", [], {"a": 1}):
        doc = {"type": "page", "anonymousId": "v1", "groupId": group_id, "context": {"groupId": group_id}}
        ev = one(orjson.dumps({**doc, "timestamp": "2026-10-01T00:00:00Z"}))
        assert isinstance(ev, Event) and ev.account_id is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"\xff\xfe{", "not_utf8"),
        (b"{not json", "not_json"),
        (b"[1,2]", "not_object"),
        (b'{"type":"alias","userId":"u"}', "unsupported_type"),
        (b'{"type":"track","event":"E","messageId":"m"}', "missing_id"),
        (b'{"type":"track","event":"E","userId":"u"}', "missing_id"),
        (b'{"type":"group","userId":"u"}', "missing_id"),
        (b'{"type":"track","event":"E","userId":"u","messageId":"m","properties":[]}', "schema_violation"),
        (b'{"type":"track","event":"E","userId":5,"messageId":"m"}', "schema_violation"),
        (b'{"type":"track","event":"E","userId":"u\\u0000x","messageId":"m"}', "schema_violation"),
        # an account named by anything but an id (found by the compiled core's type checks)
        (b'{"type":"identify","userId":"u","groupId":[]}', "schema_violation"),
        (b'{"type":"identify","userId":"u","groupId":7}', "schema_violation"),
        (b'{"type":"track","event":"E","userId":"u","messageId":"m","timestamp":"yesterday!"}', "bad_timestamp"),
        (
            b'{"type":"track","event":"E","userId":"u","messageId":"m","timestamp":"1970-01-01T00:00:00Z"}',
            "bad_timestamp",
        ),
        (b'{"type":"track","event":"E","userId":"u","messageId":"m"}', "bad_timestamp"),
        (b'{"batch": 3}', "schema_violation"),
        (b"", "not_json"),
    ],
)
def test_rejections(value, reason):
    r = one(value)
    assert isinstance(r, Rejection), r
    assert r.reason == reason
    assert r.raw == value


def test_size_and_batch_limits():
    limits = DecodeLimits(max_message_bytes=100, max_batch_events=2)
    assert one(b"{" + b" " * 200 + b"}", limits=limits).reason == "too_large"
    big = orjson.dumps({"batch": [TRACK, TRACK, TRACK]})
    assert one(big, limits=DecodeLimits(max_batch_events=2)).reason == "batch_too_large"


def test_future_timestamp_relative_to_broker():
    doc = dict(TRACK, timestamp="2026-10-05T00:00:00Z")
    r = one(orjson.dumps(doc), broker_timestamp_ms=1_790_848_800_000)
    assert isinstance(r, Rejection) and r.reason == "bad_timestamp"


def test_broker_timestamp_is_the_last_resort():
    doc = {k: v for k, v in TRACK.items() if k != "timestamp"}
    ev = one(orjson.dumps(doc), broker_timestamp_ms=1_790_000_000_000)
    assert isinstance(ev, Event) and ev.timestamp_ms == 1_790_000_000_000


def test_batch_mixes_good_and_bad_records():
    batch = {"batch": [TRACK, {"type": "track"}, "junk", dict(TRACK, messageId="m2")]}
    out = decode_message(orjson.dumps(batch))
    assert [type(o).__name__ for o in out] == ["Event", "Rejection", "Rejection", "Event"]
    assert [o.index for o in out] == [0, 1, 2, 3]
    assert out[1].reason == "missing_id" and out[2].reason == "not_object"
    assert orjson.loads(out[1].raw) == {"type": "track"}
