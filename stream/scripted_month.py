"""A scripted six weeks of one product's events: one account per drift alert
kind, and one healthy account that should raise none.

Event-timed and deterministic, so the offline pipeline, a live run and a
replay of it must publish the very same alerts and triggers. The criteria
change (v1 -> v2 adds ``share_wide``) happens between the two phases:
:func:`phase_one` is everything before midday of day 21, :func:`phase_two`
the rest. Each account's intended story is in :data:`STORIES`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

START = datetime(2026, 8, 3, tzinfo=UTC)
DAYS = 42
CHANGE_DAY = 21
#: Every account but the dormant one logs in here: 20 s before the watermark
#: (6 h lateness) reaches midnight of day 42, so that midnight is only swept
#: when the wall clock moves the idle partitions on.
FINAL = START + timedelta(days=DAYS, hours=6, seconds=-20)
FINAL_MIDNIGHT = START + timedelta(days=DAYS)

#: account -> (alert kinds it must raise, what happens)
STORIES: dict[str, tuple[set[str], str]] = {
    "healthy": (set(), "everyone does everything every day"),
    "drop": ({"engagement_drop"}, "days 28-34 only light use, then back to normal"),
    "lumen": ({"high_engagement_low_activation"}, "heavy logins and videos, never a report"),
    "stalled": ({"stalled_activation"}, "only connects, then adopts the flagship on day 15"),
    "flagship": ({"flagship_unadopted"}, "everything but the flagship AI editing"),
    "regression": ({"activation_regression"}, "one sharer until day 30; v2 wants two"),
    "dormant": ({"dormant"}, "active until day 20, then silent"),
    "champion": ({"single_champion"}, "one manager does everything, two users never return"),
    "shallow": ({"shallow_org"}, "three active users, no manager"),
}

CRITERIA_V1: dict[str, Any] = {
    "version": 1,
    "activation_threshold": 0.6,
    "user_milestones": [
        {"id": "connected", "event": "Data Source Connected"},
        {"id": "reported", "event": "Report Created"},
        {"id": "shared", "event": "Report Shared"},
    ],
    "account_milestones": [
        {"id": "team_connected", "user_milestone": "connected", "min_users": 2},
        {"id": "team_reporting", "user_milestone": "reported", "min_users": 2},
        {"id": "manager_reporting", "user_milestone": "reported", "min_users": 1, "role": "manager"},
        {"id": "ai_editing", "event": "AI Edit Applied", "flagship": True},
    ],
    "engagement": {
        "weights": {
            "Logged In": 1,
            "Data Source Connected": 2,
            "Report Created": 10,
            "Report Shared": 5,
            "AI Edit Applied": 5,
            "Video Uploaded": 3,
        },
        "half_life_days": 7,
    },
    "alerts": {
        "cooldown_days": 2,
        "engagement_drop": {"share": 0.5, "critical_share": 0.25, "min_baseline": 60},
        "high_engagement_low_activation": {"min_engagement_7d": 500, "max_activation_rate": 0.6},
        "stalled_activation": {"max_activation_rate": 0.35, "after_days": 10},
        "flagship_unadopted": {"after_days": 20},
        "activation_regression": {"min_drop": 0.15, "critical_drop": 0.25},
        "dormant": {"after_days": 7},
        "single_champion": {"min_users": 3},
        "shallow_org": {"min_active_users": 3},
    },
    "lifecycle": {"trial_plans": ["trial"], "no_first_key_action_hours": 24, "stuck_days": 5, "inactive_days": 7},
}


def criteria_v2() -> dict[str, Any]:
    doc = copy.deepcopy(CRITERIA_V1)
    doc["version"] = 2
    doc["account_milestones"].append({"id": "share_wide", "user_milestone": "shared", "min_users": 2})
    return doc


@dataclass(frozen=True, slots=True)
class Call:
    ts: datetime
    key: str
    doc: dict[str, Any]


def _iso(ts: datetime) -> str:
    return ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Script:
    def __init__(self) -> None:
        self.calls: list[Call] = []

    def at(self, day: int, hour: float) -> datetime:
        return START + timedelta(days=day, hours=hour)

    def track(self, account: str, user: str, event: str, ts: datetime, **props: Any) -> None:
        n = len(self.calls)
        doc = {
            "type": "track",
            "messageId": f"sm-{n:06d}",
            "userId": f"{account}-{user}",
            "event": event,
            "timestamp": _iso(ts),
            "properties": props,
            "context": {"groupId": account},
        }
        self.calls.append(Call(ts, account, doc))

    def join(self, account: str, user: str, role: str, plan: str = "business") -> None:
        ts = START + timedelta(minutes=10 + len(self.calls) % 30)
        uid = f"{account}-{user}"
        traits = {"name": account, "plan": plan, "createdAt": _iso(START)}
        self.calls.append(
            Call(
                ts,
                account,
                {"type": "group", "userId": uid, "groupId": account, "timestamp": _iso(ts), "traits": traits},
            )
        )
        ts2 = ts + timedelta(seconds=1)
        identify = {
            "type": "identify",
            "userId": uid,
            "timestamp": _iso(ts2),
            "traits": {"role": role, "createdAt": _iso(ts)},
        }
        if uid in VISITORS.values():  # this user was a visitor before signing up
            identify["anonymousId"] = next(v for v, u in VISITORS.items() if u == uid)
        self.calls.append(Call(ts2, uid, identify))

    def full_day(
        self, account: str, user: str, day: int, *, share: bool = True, ai: bool = False, hour: float = 8
    ) -> None:
        self.track(account, user, "Logged In", self.at(day, hour))
        self.track(account, user, "Data Source Connected", self.at(day, hour + 1))
        self.track(account, user, "Report Created", self.at(day, hour + 2))
        if share:
            self.track(account, user, "Report Shared", self.at(day, hour + 3), channel="email")
        if ai:
            self.track(account, user, "AI Edit Applied", self.at(day, hour + 4))


#: Anonymous visitors before the accounts start; two of them sign up.
VISITORS = {"visitor-1": "healthy-u1", "visitor-2": "healthy-u2", "visitor-3": None, "visitor-4": None}


def _build() -> list[Call]:
    s = _Script()
    for n, visitor in enumerate(VISITORS):
        ts = START + timedelta(minutes=1 + n)
        page = {"type": "page", "anonymousId": visitor, "name": "Pricing", "timestamp": _iso(ts)}
        s.calls.append(Call(ts, visitor, page))
    users = ("u0", "u1", "u2")
    roles = {"u0": "manager", "u1": "member", "u2": "member"}
    for account in STORIES:
        for u in users:
            role = "member" if account == "shallow" else roles[u]
            s.join(account, u, role, plan="trial" if account == "healthy" else "business")
    for day in range(DAYS):
        for i, u in enumerate(users):
            h = 8 + i * 0.25
            s.full_day("healthy", u, day, ai=u == "u0", hour=h)
            s.full_day("shallow", u, day, ai=u == "u0", hour=h)
            s.full_day("flagship", u, day, hour=h)
            s.full_day("regression", u, day, ai=u == "u0", share=u == "u0" or (u == "u1" and day >= 30), hour=h)
            if 28 <= day <= 34:  # drop: light use only
                s.track("drop", u, "Logged In", s.at(day, h))
                s.track("drop", u, "Data Source Connected", s.at(day, h + 1))
                if u == "u0":
                    s.track("drop", u, "Report Created", s.at(day, h + 2))
            else:
                s.full_day("drop", u, day, ai=u == "u0", hour=h)
            for k in range(10):  # lumen: heavy, shallow use
                s.track("lumen", u, "Logged In", s.at(day, h + k * 0.5))
            for k in range(3):
                s.track("lumen", u, "Video Uploaded", s.at(day, h + 5 + k * 0.5))
            s.track("lumen", u, "Data Source Connected", s.at(day, h + 7))
            s.track("lumen", u, "AI Edit Applied", s.at(day, h + 8))
            s.track("stalled", u, "Logged In", s.at(day, h))
            s.track("stalled", u, "Data Source Connected", s.at(day, h + 1))
            if day == 15 and u == "u0":
                s.track("stalled", u, "AI Edit Applied", s.at(day, h + 2))
            if day <= 20:
                s.track("dormant", u, "Data Source Connected", s.at(day, h))
                if day == 1:
                    s.track("dormant", u, "Report Created", s.at(day, h + 1))
                    if u == "u0":
                        s.track("dormant", u, "AI Edit Applied", s.at(day, h + 2))
                if day == 2:
                    s.track("dormant", u, "Report Shared", s.at(day, h + 1), channel="slack")
            if u == "u0":
                s.full_day("champion", u, day, ai=True, hour=h)
            elif day == 0:
                s.track("champion", u, "Logged In", s.at(day, h))
    for account in STORIES:
        if account != "dormant":
            s.track(account, "u0", "Logged In", FINAL)
    s.calls.sort(key=lambda c: (c.ts, 0 if c.doc["type"] != "track" else 1, str(c.doc.get("messageId"))))
    return s.calls


def calls() -> list[Call]:
    return _build()


def messages(calls_: list[Call]) -> Iterator[tuple[bytes, bytes]]:
    for c in calls_:
        yield c.key.encode(), orjson.dumps(c.doc)


def phase_one() -> list[Call]:
    cut = START + timedelta(days=CHANGE_DAY, hours=12)
    return [c for c in calls() if c.ts < cut]


def phase_two() -> list[Call]:
    cut = START + timedelta(days=CHANGE_DAY, hours=12)
    return [c for c in calls() if c.ts >= cut]
