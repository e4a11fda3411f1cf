"""Builders for Segment calls and state snapshots shared by the core tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from stream.core.clock import TimeRules
from stream.core.replay import OfflinePipeline

T0 = datetime(2026, 10, 1, tzinfo=UTC)
#: For tests of order independence: nothing is ever late (and nothing swept).
NO_LATENESS = TimeRules(allowed_lateness_ms=10**13)


def iso(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def track(mid: str, user: str, account: str | None, event: str, minutes: float, **props: Any) -> bytes:
    doc: dict[str, Any] = {
        "type": "track",
        "messageId": mid,
        "userId": user,
        "event": event,
        "timestamp": iso(minutes),
        "properties": props,
    }
    if account is not None:
        doc["context"] = {"groupId": account}
    return orjson.dumps(doc)


def group(user: str, account: str, minutes: float, **traits: Any) -> bytes:
    return orjson.dumps(
        {"type": "group", "userId": user, "groupId": account, "timestamp": iso(minutes), "traits": traits}
    )


def identify(user: str, minutes: float, **traits: Any) -> bytes:
    return orjson.dumps({"type": "identify", "userId": user, "timestamp": iso(minutes), "traits": traits})


def snapshot(p: OfflinePipeline) -> dict[str, Any]:
    """The order-independent part of the pipeline's state (not lanes or id windows)."""
    accounts = {
        a: {
            "reached": s.reached,
            "rate": s.rate,
            "activated_at": s.activated_at,
            "events": dict(s.events),
            "wheres": {k: t for k, t in s.wheres.items() if t.n},
            "members": {u: (m.role, m.reached, m.activated, m.rate) for u, m in s.members.items()},
            "traits": s.traits,
            "first_seen": s.first_seen,
            "days": s.days,
        }
        for a, s in p.accounts.items()
    }
    users = {
        f"{a}/{u}": {
            "reached": s.reached,
            "rate": s.rate,
            "activated_at": s.activated_at,
            "events": dict(s.events),
            "wheres": {k: t for k, t in s.wheres.items() if t.n},
            "traits": s.traits,
            "days": s.days,
        }
        for (a, u), s in p.users.items()
    }
    return {"accounts": accounts, "users": users}
