"""HTTP views have a bounded size whatever the data: lists that grow with an
account's users or event names are cut at documented constants and say how much
was left out; ids are validated as the input schemas validate them."""

from __future__ import annotations

import copy

import orjson
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.core.criteria import parse_criteria
from stream.core.engagement import MAX_BY_EVENT_IN_VIEW, engagement_view
from stream.core.records import Alert, Member
from stream.core.replay import OfflinePipeline
from stream.core.segment import MAX_ID_LENGTH, Event, decode_message, valid_id
from stream.core.views import MAX_USER_ALERTS_IN_VIEW, MAX_USERS_IN_VIEW, account_view, user_view
from tests.conftest import ROOT
from tests.core.helpers import track

DOC = yaml.safe_load((ROOT / "deploy" / "criteria.yaml").read_text())


def test_account_view_lists_the_most_activated_users_and_counts_the_rest(criteria):
    p = OfflinePipeline(criteria)
    p.feed(track("m", "u", "a", "Logged In", 0))
    state = p.accounts["a"]
    for i in range(MAX_USERS_IN_VIEW + 30):
        state.members[f"x{i:04d}"] = Member(rate=1.0 if i >= 100 else 0.0, activated=i >= 100)
    users = account_view(state, criteria, p.clock_for("a"), p.swept_for("a"))["users"]
    assert users["known"] == MAX_USERS_IN_VIEW + 31
    assert len(users["top"]) == MAX_USERS_IN_VIEW
    assert users["top_omitted"] == 31
    assert all(u["activated"] for u in users["top"][:130])  # the most activated first
    assert users["activated"] == MAX_USERS_IN_VIEW + 30 - 100


def test_account_view_small_account_omits_nothing(criteria):
    p = OfflinePipeline(criteria)
    p.feed(track("m", "u", "a", "Logged In", 0))
    view = account_view(p.accounts["a"], criteria, p.clock_for("a"), p.swept_for("a"))
    assert view["users"]["top_omitted"] == 0 and view["drift_alerts_omitted"] == 0
    assert [u["user_id"] for u in view["users"]["top"]] == ["u"]


def test_account_view_caps_user_alerts_but_lists_every_account_alert(criteria):
    p = OfflinePipeline(criteria)
    p.feed(track("m", "u", "a", "Logged In", 0))
    state = p.accounts["a"]
    extra = 25
    for i in range(MAX_USER_ALERTS_IN_VIEW + extra):
        state.alerts[f"dormant:u{i:04d}"] = Alert("dormant", "warning", 0, user_id=f"u{i:04d}")
    state.alerts["dormant"] = Alert("dormant", "critical", 0)
    state.alerts["zz_flagship_unadopted:ai_editing"] = Alert("flagship_unadopted", "warning", 0, milestone="ai_editing")
    view = account_view(state, criteria, p.clock_for("a"), p.swept_for("a"))
    listed = view["drift_alerts"]
    assert len(listed) == MAX_USER_ALERTS_IN_VIEW + 2
    assert view["drift_alerts_omitted"] == extra
    assert {a["key"] for a in listed if a["user_id"] is None} == {"dormant", "zz_flagship_unadopted:ai_editing"}
    assert [a["key"] for a in listed] == sorted(a["key"] for a in listed)  # key order, as before
    assert len(orjson.dumps(view)) < 100_000


def test_engagement_by_event_is_capped_and_the_total_complete():
    doc = copy.deepcopy(DOC)
    doc["engagement"] = {"weights": {"Heavy": 100}, "default_weight": 1}
    criteria = parse_criteria(doc)
    p = OfflinePipeline(criteria)
    names = [f"Event {i:03d}" for i in range(MAX_BY_EVENT_IN_VIEW + 20)]
    p.feed_all([track(f"m{i}", "u", "a", name, i) for i, name in enumerate([*names, "Heavy"])])
    now = p.clock_for("a")
    for days in (p.accounts["a"].days, p.users[("a", "u")].days):
        week = engagement_view(days, criteria.engagement, now)["window_7d"]
        assert len(week["by_event"]) == MAX_BY_EVENT_IN_VIEW
        assert week["by_event_omitted"] == 21
        assert next(iter(week["by_event"])) == "Heavy"  # the largest contributions first
        assert week["total"] == 100 + len(names)  # the total counts every event
    user = user_view(p.accounts["a"], p.users[("a", "u")], criteria, now)
    assert len(user["event_counts"]) == len(names) + 1  # bounded by the event name limit instead


def test_valid_id_rules():
    assert valid_id("acme") and valid_id("x" * MAX_ID_LENGTH) and valid_id("ünï 🚀 ?&%=+/")
    assert valid_id("\x7f") and valid_id("a\u200bb")  # the schemas accept these: the API answers for them
    assert not valid_id("") and not valid_id("x" * (MAX_ID_LENGTH + 1))
    assert not valid_id("bad\x01id") and not valid_id("a\x1fb") and not valid_id("\n") and not valid_id("\x00")
    assert not valid_id("\ud800")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=300))
def test_valid_id_is_what_the_decoder_accepts(user_id):
    """Every id the decoder lets through can be asked for over HTTP, and no other."""
    call = {"type": "track", "messageId": "m", "event": "E", "userId": user_id, "timestamp": "2026-10-01T00:00:00Z"}
    [decoded] = decode_message(orjson.dumps(call))
    assert isinstance(decoded, Event) == valid_id(user_id), decoded
