from __future__ import annotations

import orjson

from stream.core.routing import TO_ACCOUNT, TO_USER, direct_lane, lane_source, route_call, user_lane
from stream.core.segment import Event, decode_message
from tests.core.helpers import group, identify, track


def decoded(value: bytes) -> Event:
    (event,) = decode_message(value)
    assert isinstance(event, Event)
    return event


def test_lanes_round_trip():
    lane = direct_lane("my.topic:with:colons", 3)
    assert lane_source(lane) == ("my.topic:with:colons", 3)
    assert lane_source(user_lane(2, lane)) == ("my.topic:with:colons", 3)


def test_routes():
    t = route_call(decoded(track("m", "u", "acme", "E", 1)), "in", 0, 7)
    assert [(target, e.account_id, e.offset) for target, e in t] == [(TO_ACCOUNT, "acme", 7)]
    t = route_call(decoded(track("m", "u", None, "E", 1)), "in", 0, 7)
    assert [(target, e.account_id) for target, e in t] == [(TO_USER, "")]
    assert orjson.loads(t[0][1].raw)["messageId"] == "m"
    g = route_call(decoded(group("u", "acme", 1)), "in", 1, 2)
    assert [target for target, _ in g] == [TO_ACCOUNT, TO_USER]
    i = route_call(decoded(identify("u", 1, role="x")), "in", 1, 2)
    assert [target for target, _ in i] == [TO_USER]


def test_visitors_count_once_and_convert_when_a_later_call_links_them(criteria):
    import orjson

    from stream.core.replay import OfflinePipeline
    from stream.core.timeutil import parse_timestamp_ms

    def call(**doc):
        return orjson.dumps({"timestamp": "2026-10-01T10:00:00Z", **doc})

    p = OfflinePipeline(criteria)
    p.feed_all(
        [
            call(type="page", anonymousId="v1", name="Pricing"),
            call(type="page", anonymousId="v1", timestamp="2026-10-01T09:00:00Z"),
            call(type="screen", anonymousId="v2"),
            call(type="track", anonymousId="v3", event="Signup Started", messageId="m3"),
            # v1 signs up later; v4 was never an anonymous visitor
            call(type="identify", userId="u1", anonymousId="v1", timestamp="2026-10-02T10:00:00Z", traits={}),
            call(type="identify", userId="u4", anonymousId="v4", traits={}),
            # v2 is linked before it ever visited anonymously: not a conversion
            call(type="page", userId="u2", anonymousId="v2", timestamp="2026-09-30T10:00:00Z"),
        ]
    )
    assert not p.rejections
    assert p.visitor_counts() == (3, 1)
    earliest = parse_timestamp_ms("2026-10-01T09:00:00Z")
    assert p.directory["~anon:v1"].traits["first_visit"][0] == earliest  # the earliest visit
    assert not p.accounts  # visits touch no account


def test_an_identify_with_only_an_anonymous_id_is_rejected():
    import orjson

    from stream.core.segment import Rejection, decode_message

    (got,) = decode_message(orjson.dumps({"type": "identify", "anonymousId": "v", "timestamp": "2026-10-01T00:00:00Z"}))
    assert isinstance(got, Rejection) and got.reason == "missing_id"


def test_a_parked_call_is_late_or_not_by_its_own_partition_whatever_the_interleaving(criteria):
    """A track call naming no account waits for its user's group call, which
    comes from another input partition. Whether it had to wait depends on how
    the partitions interleaved; whether it counts must not."""
    from stream.core.replay import OfflinePipeline

    early = track("m-early", "u", None, "Report Created", 10)
    two_days = 2 * 24 * 60
    busy = [track(f"m-{n}", "w", "other", "Logged In", two_days + n) for n in range(3)]
    joins = group("u", "acme", two_days + 5)

    def counted(order: list[tuple[int, bytes]]) -> tuple[dict[str, int], list[str]]:
        p = OfflinePipeline(criteria, input_partitions=2)
        for offset, (partition, value) in enumerate(order):
            p.feed(value, partition=partition, offset=offset)
        p.finish()
        user = p.users[("acme", "u")]
        return {e: t.n for e, t in user.events.items()}, [r.reason for r in p.rejections]

    parked_first = counted([(0, early), *((1, b) for b in busy), (1, joins)])
    group_first = counted([*((1, b) for b in busy), (1, joins), (0, early)])
    assert parked_first == group_first == ({"Report Created": 1}, [])
