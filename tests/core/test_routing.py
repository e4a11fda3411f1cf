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
