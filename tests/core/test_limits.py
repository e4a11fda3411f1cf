"""The four resource limits (README "Limits"): past each one, the call goes to a
rejection (the DLQ) with a reason and a detail naming the limit; calls under it
are still applied. Nothing is dropped silently, and the offline pipeline (the
oracle `stream verify` uses) rejects exactly what a worker does, since both run
the same core."""

from __future__ import annotations

import orjson

from stream.core.activation import (
    EVENT_NAME_LIMIT_DETAIL,
    USER_LIMIT_DETAIL,
    ActivationLimits,
)
from stream.core.envelope import Envelope
from stream.core.replay import OfflinePipeline
from stream.core.segment import DecodeLimits, Event, Rejection, decode_message
from stream.core.views import account_view
from tests.core.helpers import group, iso, track


def applied_events(p: OfflinePipeline, account: str, user: str) -> dict[str, int]:
    return {name: t.n for name, t in p.users[(account, user)].events.items()}


def test_message_size_limit(criteria):
    under = track("m1", "u", "a", "Logged In", 1)
    limits = DecodeLimits(max_message_bytes=len(under))
    over = track("m2", "u", "a", "Logged In", 2, pad="x")
    assert len(over) > len(under)
    [rejection] = decode_message(over, limits=limits)
    assert isinstance(rejection, Rejection)
    assert rejection.reason == "too_large"
    assert rejection.detail == f"{len(over)} bytes > {len(under)}"
    assert rejection.raw == over  # the DLQ gets the original bytes

    p = OfflinePipeline(criteria, decode_limits=limits)
    p.feed_all([under, over, track("m3", "u", "a", "Logged In", 3)])
    assert [(r.reason, r.raw) for r in p.rejections] == [("too_large", over)]
    assert applied_events(p, "a", "u") == {"Logged In": 2}


def test_batch_length_limit(criteria):
    calls = [orjson.loads(track(f"m{i}", "u", "a", "Logged In", i)) for i in range(4)]
    limits = DecodeLimits(max_batch_events=3)
    at_limit = orjson.dumps({"batch": calls[:3]})
    over = orjson.dumps({"batch": calls})
    assert all(isinstance(d, Event) for d in decode_message(at_limit, limits=limits))
    [rejection] = decode_message(over, limits=limits)
    assert isinstance(rejection, Rejection)
    assert (rejection.reason, rejection.detail, rejection.raw) == ("batch_too_large", "4 items > 3", over)

    p = OfflinePipeline(criteria, decode_limits=limits)
    p.feed_all([at_limit, over])
    # the whole oversize batch is one dead letter (its bytes hold every call)
    assert [r.reason for r in p.rejections] == ["batch_too_large"]
    assert applied_events(p, "a", "u") == {"Logged In": 3}


def test_users_per_account_limit(criteria):
    p = OfflinePipeline(criteria, limits=ActivationLimits(max_users_per_account=2))
    p.feed_all(
        [
            track("m0", "u0", "a", "Logged In", 0),
            group("u1", "a", 1),
            track("m2", "u2", "a", "Logged In", 2),  # a third user: over the limit
            group("u2", "b", 3),  # ... who is welcome in another account
            track("m4", "u0", "a", "Report Created", 4),  # known users go on
        ]
    )
    [rejection] = p.rejections
    assert rejection.reason == "limit_exceeded"
    assert rejection.detail.startswith(USER_LIMIT_DETAIL) and "2 users" in rejection.detail
    sent = Envelope.from_bytes(rejection.raw)  # the call, as the processor understood it
    assert (sent.account_id, sent.user_id, sent.message_id) == ("a", "u2", "m2")
    assert sorted(p.accounts["a"].members) == ["u0", "u1"]
    assert ("a", "u2") not in p.users  # a user past the limit gets no record
    assert applied_events(p, "a", "u0") == {"Logged In": 1, "Report Created": 1}
    assert "u2" in p.accounts["b"].members
    state = p.accounts["a"]
    assert state.overflow == 1
    assert account_view(state, p.criteria, p.clock_for("a"), p.swept_for("a"))["rejected_over_limits"] == 1
    # read again (a restart from the last commit): already handled, counted once
    p.feed(track("m2", "u2", "a", "Logged In", 2), offset=2)
    assert len(p.rejections) == 1 and p.duplicates == 1 and state.overflow == 1


def test_event_names_per_user_limit(criteria):
    p = OfflinePipeline(criteria, limits=ActivationLimits(max_event_names_per_user=2))
    p.feed_all(
        [
            track("m0", "u", "a", "Logged In", 0),
            track("m1", "u", "a", "Report Created", 1),
            track("m2", "u", "a", "Video Uploaded", 2),  # a third name: over the limit
            track("m3", "u", "a", "Logged In", 3),  # names the user has still count
            track("m4", "v", "a", "Video Uploaded", 4),  # the limit is per user
        ]
    )
    [rejection] = p.rejections
    assert rejection.reason == "limit_exceeded"
    assert rejection.detail.startswith(EVENT_NAME_LIMIT_DETAIL) and "2 event names" in rejection.detail
    sent = Envelope.from_bytes(rejection.raw)
    assert (sent.user_id, sent.event, sent.message_id) == ("u", "Video Uploaded", "m2")
    assert applied_events(p, "a", "u") == {"Logged In": 2, "Report Created": 1}
    assert applied_events(p, "a", "v") == {"Video Uploaded": 1}
    # the account's tallies stay the sum of its users' (the rejected call is in neither)
    state = p.accounts["a"]
    assert {name: t.n for name, t in state.events.items()} == {"Logged In": 2, "Report Created": 1, "Video Uploaded": 1}
    assert state.overflow == 1
    assert p.applied == 4


def test_event_name_limit_rejection_is_replay_safe(criteria):
    """A rejected call read again (a worker restarting from its last commit) is
    a duplicate: counted once in the overflow, never applied."""
    p = OfflinePipeline(criteria, limits=ActivationLimits(max_event_names_per_user=1))
    first = track("m0", "u", "a", "Logged In", 0)
    second = track("m1", "u", "a", "Report Created", 1)
    p.feed(first, offset=0)
    p.feed(second, offset=1)
    p.feed(second, offset=1)
    assert [r.reason for r in p.rejections] == ["limit_exceeded"]
    assert p.duplicates == 1 and p.accounts["a"].overflow == 1


def test_identify_and_group_calls_are_not_event_names(criteria):
    p = OfflinePipeline(criteria, limits=ActivationLimits(max_event_names_per_user=1))
    p.feed_all([track("m0", "u", "a", "Logged In", 0), group("u", "a", 1, plan="pro")])
    identify = orjson.dumps(
        {"type": "identify", "userId": "u", "timestamp": iso(2), "traits": {"role": "admin"}, "context": {}}
    )
    p.feed(identify, offset=5)
    assert not p.rejections
    assert p.users[("a", "u")].role == "admin"
