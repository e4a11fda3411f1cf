"""Hostile input never stops the processor and is never lost: over 10k generated
bad messages (stream/hostile/) and property-based random input, every bad
record becomes a rejection with a known reason (the DLQ) and every good call,
even in a batch full of bad ones, is applied."""

from __future__ import annotations

import json
import tracemalloc
from collections import Counter
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.core.kpis import account_kpis, finalize, kpi_partial
from stream.core.replay import OfflinePipeline
from stream.core.segment import REASONS, DecodeLimits, Event, Rejection, _dumps_deep, decode_message
from stream.core.timeutil import MAX_EVENT_MS, MIN_EVENT_MS
from stream.core.views import account_view, user_view
from stream.hostile import (
    ACCOUNT_PREFIX,
    DEFAULT_MAX_MESSAGE_BYTES,
    GOOD_ID_PREFIX,
    KINDS,
    HostileCorpus,
    count_good_calls,
    hostile_corpus,
    hostile_messages,
)

NOW = 1_790_000_000_000  # 2026-09-21
COUNT = 10_000
LIMITS = DecodeLimits(max_message_bytes=DEFAULT_MAX_MESSAGE_BYTES)


@pytest.fixture(scope="module")
def corpus() -> HostileCorpus:
    return hostile_corpus(COUNT, seed=11, now_ms=NOW)


def is_good(item: Any) -> bool:
    return isinstance(item, dict) and str(item.get("messageId", "")).startswith(GOOD_ID_PREFIX)


def check_decoded(out: list[Any]) -> None:
    """What every decode must give: events and typed, short rejections."""
    assert isinstance(out, list)
    for item in out:
        assert isinstance(item, Event | Rejection), item
        if isinstance(item, Rejection):
            assert item.reason in REASONS
            assert isinstance(item.raw, bytes)
            assert len(item.detail) <= 200 and item.detail.isprintable()
        else:
            assert isinstance(item.user_id, str) and MIN_EVENT_MS <= item.timestamp_ms < MAX_EVENT_MS
            assert item.type != "track" or isinstance(item.event, str)
            assert all(isinstance(v, bool | int | float | str) for v in item.properties.values())


# ------------------------------------------------------------ the generator


def test_same_arguments_same_bytes():
    a = hostile_messages(300, seed=3, now_ms=NOW)
    assert a == hostile_messages(300, seed=3, now_ms=NOW)
    assert a != hostile_messages(300, seed=4, now_ms=NOW)
    assert len(a) == 300


def test_corpus_has_every_kind_within_the_size_cap(corpus):
    assert len(corpus.messages) == COUNT
    assert set(corpus.kinds) == set(KINDS) and sum(corpus.kinds.values()) == COUNT
    assert min(corpus.kinds.values()) >= 50
    sizes = [len(value) for _, value in corpus.messages]
    assert max(sizes) < 2 * DEFAULT_MAX_MESSAGE_BYTES
    assert sum(1 for s in sizes if s > DEFAULT_MAX_MESSAGE_BYTES) == corpus.kinds["too_large"]
    assert sum(sizes) < 30_000_000  # quick to publish
    assert {type(key) for key, _ in corpus.messages} == {bytes, type(None)}
    assert corpus.good_calls > 5_000 and corpus.bad_records > COUNT
    assert count_good_calls(corpus.messages) == corpus.good_calls
    assert count_good_calls(value for _, value in corpus.messages[:100]) <= corpus.good_calls
    assert all(a.startswith(ACCOUNT_PREFIX) for a in corpus.accounts)


def test_first_messages_are_one_of_each_kind():
    corpus = hostile_corpus(len(KINDS), seed=0, now_ms=NOW)
    assert corpus.kinds == Counter(dict.fromkeys(KINDS, 1))


def test_good_calls_can_be_dated_before_the_broker_clock():
    """A workload of two months ago, published now: good calls fit the
    workload's time, bad future timestamps stay bad relative to the broker."""
    then = NOW - 60 * 86_400_000
    corpus = hostile_corpus(2_000, seed=5, now_ms=then, broker_ms=NOW)
    decoded = [d for _, v in corpus.messages for d in decode_message(v, broker_timestamp_ms=NOW, limits=LIMITS)]
    events = [d for d in decoded if isinstance(d, Event)]
    assert len(events) == corpus.good_calls
    assert all(then - 3_600_000 < e.timestamp_ms <= then for e in events)
    assert sum(isinstance(d, Rejection) for d in decoded) == corpus.bad_records


def test_small_message_limits_are_refused():
    with pytest.raises(ValueError, match="max_message_bytes"):
        hostile_messages(10, max_message_bytes=1_000)


# ----------------------------------------------------------- the decoder


def test_10k_hostile_messages_decode_to_events_and_known_rejections(corpus):
    events = rejections = 0
    good_in_mixed = applied_in_mixed = 0
    reasons: Counter[str] = Counter()
    for _key, value in corpus.messages:
        out = decode_message(value, broker_timestamp_ms=NOW, limits=LIMITS)
        check_decoded(out)
        for item in out:
            if isinstance(item, Rejection):
                rejections += 1
                reasons[item.reason] += 1
                assert GOOD_ID_PREFIX.encode() not in item.raw  # a dead letter holds only its bad record
            else:
                events += 1
                assert item.message_id is not None and item.message_id.startswith(GOOD_ID_PREFIX)
                assert item.account_id is not None and item.account_id.startswith(ACCOUNT_PREFIX)
        doc = _loads(value)
        if isinstance(doc, dict) and isinstance(doc.get("batch"), list) and len(value) <= LIMITS.max_message_bytes:
            # a batch mixing good and bad calls: each good one is an event, each bad one a rejection
            good = [i for i, item in enumerate(doc["batch"]) if is_good(item)]
            good_in_mixed += len(good)
            assert [o.index for o in out if isinstance(o, Event)] == good
            applied_in_mixed += len(good)
            assert [o.index for o in out] == list(range(len(doc["batch"]))) or len(out) == 1
    assert events == corpus.good_calls
    assert rejections == corpus.bad_records
    assert good_in_mixed == corpus.good_calls == applied_in_mixed
    # every reason the decoder can give is exercised
    assert set(reasons) == {
        "too_large",
        "not_utf8",
        "not_json",
        "not_object",
        "batch_too_large",
        "unsupported_type",
        "schema_violation",
        "missing_id",
        "bad_timestamp",
    }


def test_counts_hold_with_the_default_limits(corpus):
    """A consumer with a larger message limit rejects each oversize message
    once all the same (for another reason)."""
    decoded = [d for _, v in corpus.messages for d in decode_message(v, broker_timestamp_ms=NOW + 60_000)]
    assert sum(isinstance(d, Event) for d in decoded) == corpus.good_calls
    assert sum(isinstance(d, Rejection) for d in decoded) == corpus.bad_records
    assert not any(isinstance(d, Rejection) and d.reason == "too_large" for d in decoded)


def test_10k_hostile_messages_through_the_offline_pipeline(corpus, criteria):
    p = OfflinePipeline(criteria, decode_limits=LIMITS, input_partitions=1)
    for offset, (_key, value) in enumerate(corpus.messages):
        p.feed(value, offset=offset, broker_ts=NOW)
    p.finish(idle_ms=3 * 86_400_000)  # sweeps and timers run over the hostile accounts too
    assert p.applied == corpus.good_calls
    assert p.duplicates == 0
    assert len(p.rejections) == corpus.bad_records
    assert {r.reason for r in p.rejections} <= set(REASONS)
    # every good track call is in its user's and its account's tallies (none lost, none twice)
    tracks = Counter()
    for _key, value in corpus.messages:
        doc = _loads(value)
        items = doc["batch"] if isinstance(doc, dict) and isinstance(doc.get("batch"), list) else [doc]
        for item in items:
            if is_good(item) and item["type"] == "track":
                account = (item.get("context") or {}).get("groupId") or item["groupId"]
                tracks[(account, item["userId"], item["event"])] += 1
    tallied = Counter(
        {(a, u, name): t.n for (a, u), user in p.users.items() for name, t in user.events.items()},
    )
    assert tallied == tracks
    for account_id, state in p.accounts.items():
        assert account_id.startswith(ACCOUNT_PREFIX)
        assert sum(t.n for t in state.events.values()) == sum(n for (a, _, _), n in tracks.items() if a == account_id)
        # views and KPIs render, as JSON, for whatever was accepted
        now = p.clock_for(account_id)
        orjson.dumps(account_view(state, criteria, now, p.swept_for(account_id)))
        orjson.dumps(account_kpis(state, criteria, now))
    for (account_id, _), user in p.users.items():
        orjson.dumps(user_view(p.accounts[account_id], user, criteria, p.clock_for(account_id)))
    orjson.dumps(finalize(kpi_partial(p.accounts.values(), criteria, NOW)))


# ------------------------------------------- bugs the hostile input found


def test_batch_items_nested_deeper_than_orjson_writes():
    """orjson reads 1024 levels but writes 254: a deep batch item used to raise
    while its JSON was written back (for the DLQ), losing the whole batch."""
    deep_list = b"[" * 300 + b"]" * 300
    call = {"type": "track", "messageId": "m", "userId": "u", "event": "E", "context": {"groupId": "a"}}
    deep_call = orjson.dumps(call)[:-1] + b',"properties":{"p":' + b"[" * 600 + b"1" + b"]" * 600 + b"}}"
    value = b'{"batch":[' + deep_list + b"," + deep_call + b"," + orjson.dumps({**call, "messageId": "m2"}) + b"]}"
    out = decode_message(value, broker_timestamp_ms=NOW)
    assert [type(o).__name__ for o in out] == ["Rejection", "Event", "Event"]  # as three messages would be
    assert out[0].reason == "not_object" and out[0].raw == deep_list and out[0].index == 0
    assert [o.message_id for o in out[1:]] == ["m", "m2"]


@pytest.mark.parametrize("created", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "1999-12-31T00:00:00Z"])
def test_created_at_views_could_not_print_is_rejected(created):
    call = {"type": "group", "userId": "u", "groupId": "a", "timestamp": "2026-10-01T00:00:00Z"}
    [out] = decode_message(orjson.dumps({**call, "traits": {"createdAt": created}}))
    assert isinstance(out, Rejection) and out.reason == "schema_violation" and "createdAt" in out.detail


# ------------------------------------------------------ property tests

JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
)
JSON = st.recursive(
    JSON_LEAVES,
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=40,
)
#: Any code point, with NUL, controls and lone surrogates often.
ANY_TEXT = st.text(
    alphabet=st.sampled_from(["\x00", "\x1f", "\x7f", "\x85", "\ud800", "\udbff", "\udc00", "\u2028", "\U0010ffff"])
    | st.characters(categories=["Cs", "Cc"])
    | st.characters(min_codepoint=0, max_codepoint=0x10FFFF, categories=None),
    max_size=40,
)
FIELDS = (
    "type",
    "userId",
    "anonymousId",
    "messageId",
    "event",
    "groupId",
    "timestamp",
    "originalTimestamp",
    "receivedAt",
    "properties",
    "traits",
    "context",
)
TYPES = st.sampled_from(["track", "identify", "group", "page", "screen", "alias", ""]) | JSON
STAMPS = st.sampled_from(
    ["2026-10-01T00:00:00Z", "2026-10-01T00:00:00", "1999-01-01T00:00:00Z", "2100-01-01T00:00:00Z", "nope nope!"]
) | st.datetimes().map(lambda d: d.isoformat())
CALLS = st.fixed_dictionaries(
    {"type": TYPES},
    optional={
        "userId": st.text(max_size=8) | JSON,
        "anonymousId": st.text(max_size=8) | JSON,
        "messageId": st.text(max_size=8) | JSON,
        "event": st.text(max_size=8) | JSON,
        "groupId": st.text(max_size=8) | JSON,
        "timestamp": STAMPS | JSON,
        "originalTimestamp": STAMPS | JSON,
        "properties": st.dictionaries(st.text(max_size=8), JSON, max_size=8) | JSON,
        "traits": st.fixed_dictionaries(
            {}, optional={"role": JSON, "createdAt": STAMPS | JSON, "plan": JSON, "seats": JSON, "name": JSON}
        )
        | JSON,
        "context": st.fixed_dictionaries({}, optional={"groupId": st.text(max_size=8) | JSON}) | JSON,
    },
)
DECODE = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@settings(max_examples=200, deadline=None)
@given(JSON)
def test_deep_writer_writes_what_orjson_writes(doc):
    assert _dumps_deep(doc) == orjson.dumps(doc)


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=255, max_value=1_000), JSON_LEAVES)
def test_deep_writer_round_trips_any_depth(depth, leaf):
    value = b'{"a":' * depth + orjson.dumps(leaf) + b"}" * depth
    assert _dumps_deep(orjson.loads(value)) == value


@DECODE
@given(st.binary(max_size=2_000))
def test_random_bytes_never_raise(value):
    out = decode_message(value, broker_timestamp_ms=NOW)
    check_decoded(out)
    assert len(out) >= 1 or value.strip().startswith(b"{")  # only an empty batch decodes to nothing


@DECODE
@given(JSON)
def test_random_json_never_raises(doc):
    value = orjson.dumps(doc)
    out = decode_message(value, broker_timestamp_ms=NOW)
    check_decoded(out)
    if not isinstance(doc, dict):
        assert [o.reason for o in out] == ["not_object"]


@DECODE
@given(st.integers(min_value=1, max_value=1_500), st.sampled_from([b"[", b'{"a":', b'{"batch":[']), JSON_LEAVES)
def test_deep_nesting_never_raises(depth, opener, leaf):
    closer = {b"[": b"]", b'{"a":': b"}", b'{"batch":[': b"]}"}[opener]
    value = opener * depth + orjson.dumps(leaf) + closer * depth
    out = decode_message(value, broker_timestamp_ms=NOW)
    check_decoded(out)


@DECODE
@given(st.lists(CALLS, min_size=1, max_size=5), st.booleans())
def test_random_calls_and_batches_never_raise(calls, as_batch):
    value = orjson.dumps({"batch": calls} if as_batch else calls[0])
    out = decode_message(value, broker_timestamp_ms=NOW)
    check_decoded(out)
    assert len(out) == (len(calls) if as_batch else 1)
    if as_batch:
        assert [o.index for o in out] == list(range(len(calls)))


@DECODE
@given(CALLS)
def test_random_calls_through_the_pipeline_never_raise(call):
    """Whatever the decoder accepts, the rest of the core applies (or rejects)."""
    p = OfflinePipeline(_CRITERIA)
    value = orjson.dumps(call)
    p.feed(value, broker_ts=NOW)
    p.feed(value, offset=1, broker_ts=NOW)
    p.finish(idle_ms=86_400_000)
    for account_id, state in p.accounts.items():
        orjson.dumps(account_view(state, _CRITERIA, p.clock_for(account_id), p.swept_for(account_id)))


@DECODE
@given(ANY_TEXT, st.sampled_from(["userId", "event", "messageId", "groupId", "timestamp", "properties"]))
def test_any_unicode_never_raises(text, field):
    """NUL, controls, lone surrogates: as JSON escapes (not_json when unpaired)
    or as raw bytes (invalid UTF-8 for surrogates)."""
    call = {"type": "track", "messageId": "m", "userId": "u", "event": "E", "context": {"groupId": "a"}}
    call[field] = {"p": text} if field == "properties" else text
    escaped = json.dumps(call, ensure_ascii=True).encode()
    raw = json.dumps(call, ensure_ascii=False).encode("utf-8", "surrogatepass")
    for value in (escaped, raw):
        out = decode_message(value, broker_timestamp_ms=NOW)
        check_decoded(out)
        assert len(out) == 1
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        assert decode_message(raw)[0].reason == "not_utf8"  # type: ignore[union-attr]


# ------------------------------------------------------------ memory


def test_decoder_memory_is_bounded_by_the_message_limit():
    """Oversize messages are refused before parsing; accepted sizes cost a
    bounded multiple of the limit whatever their shape (tracemalloc counts
    the parser's and Python's allocations)."""
    limit = 256 * 1024
    limits = DecodeLimits(max_message_bytes=limit)
    decode_message(b'{"type":"track"}', limits=limits)  # validators compiled outside the measure
    for value in (
        b"x" * (20 * limit),
        b"[" * (20 * limit),
        orjson.dumps({"batch": [{"type": "track", "userId": "u" * 1_000}] * 10_000}),
    ):
        assert _peak(value, limits) < 64 * 1024
    worst = {
        "tiny objects": b'{"batch":[' + b",".join([b"{}"] * ((limit - 20) // 3)) + b"]}",
        "tiny arrays": b"[" + b"[]," * ((limit - 4) // 3) + b"[]]",
        "one long string": orjson.dumps({"type": "track", "messageId": "m", "userId": "u" * (limit - 100)}),
        "deep": b"[" * 1024 + b"]" * 1024,
        "many properties": orjson.dumps(
            {"type": "track", "messageId": "m", "userId": "u", "event": "E", "properties": {"a": [0] * (limit // 3)}}
        ),
    }
    for name, value in worst.items():
        assert len(value) <= limit, name
        assert _peak(value, limits) < 64 * limit, name


def _peak(value: bytes, limits: DecodeLimits) -> int:
    tracemalloc.start()
    try:
        decode_message(value, limits=limits)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _loads(value: bytes) -> Any:
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return None


def _criteria():
    from stream.core.criteria import load_criteria_text
    from tests.conftest import ROOT

    return load_criteria_text((ROOT / "deploy" / "criteria.yaml").read_text())


_CRITERIA = _criteria()
