"""What "how is this account doing" looks like: JSON views of the state."""

from __future__ import annotations

from typing import Any

from stream.core.activation import account_base_time, user_base_time
from stream.core.criteria import Criteria
from stream.core.engagement import engagement_view
from stream.core.records import Alert
from stream.core.state import AccountState, UserState, trait
from stream.core.sweep import swept_through
from stream.core.timeutil import to_iso

#: Views have a bounded size whatever the data: lists that grow with an
#: account's users are cut, and say how much was left out.
#: An account view lists at most this many users (the most activated first);
#: ``users.known`` counts them all, ``users.top_omitted`` those not listed.
MAX_USERS_IN_VIEW = 200
#: Open drift alerts about single users (``dormant`` with a ``user_id``) an
#: account view lists at most (in key order; ``drift_alerts_omitted`` counts the
#: rest). Account-level alerts, a few per kind, are always all listed.
MAX_USER_ALERTS_IN_VIEW = 100


def _milestones(reached: dict[str, int], ids: tuple[str, ...]) -> dict[str, Any]:
    return {
        "reached": {mid: to_iso(reached[mid]) for mid in ids if mid in reached},
        "missing": [mid for mid in ids if mid not in reached],
    }


def _tta(activated_at: int | None, base: int | None) -> float | None:
    if activated_at is None or base is None:
        return None
    return max(0.0, (activated_at - base) / 1000)


def user_view(state: AccountState, user: UserState, criteria: Criteria, now_ms: int) -> dict[str, Any]:
    """``now_ms`` is the event-time clock of the account's partition (the end
    of the engagement windows)."""
    ids = criteria.user_milestone_ids
    return {
        "account_id": state.account_id,
        "user_id": user.user_id,
        "criteria_version": state.criteria_version,
        "role": user.role,
        "activation_rate": user.rate,
        "activated": user.activated_at is not None,
        "activated_at": to_iso(user.activated_at),
        "time_to_activate_seconds": _tta(user.activated_at, user_base_time(user)),
        "milestones": _milestones(user.reached, ids),
        "first_seen": to_iso(user.first_seen),
        "last_seen": to_iso(user.last_seen),
        "created_at": to_iso(trait(user.traits, "created_at")),
        "event_counts": {name: t.n for name, t in sorted(user.events.items())},
        "engagement": engagement_view(user.days, criteria.engagement, now_ms),
        "as_of": to_iso(now_ms),
    }


def _listed_alerts(state: AccountState) -> list[tuple[str, Alert]]:
    """Every account-level alert and the first user-level ones, in key order."""
    listed: list[tuple[str, Alert]] = []
    user_alerts = 0
    for key, alert in sorted(state.alerts.items()):
        if alert.user_id is not None:
            user_alerts += 1
            if user_alerts > MAX_USER_ALERTS_IN_VIEW:
                continue
        listed.append((key, alert))
    return listed


def account_view(state: AccountState, criteria: Criteria, now_ms: int, partition_swept: int) -> dict[str, Any]:
    """As of its partition's clock: ``now_ms`` its newest event time,
    ``partition_swept`` the last midnight it swept."""
    ids = criteria.account_milestone_ids
    members = sorted(state.members.items(), key=lambda kv: (-kv[1].rate, kv[0]))
    activated_users = sum(1 for _, m in members if m.activated)
    alerts = _listed_alerts(state)
    return {
        "account_id": state.account_id,
        "criteria_version": state.criteria_version,
        "activation_rate": state.rate,
        "activated": state.activated_at is not None,
        "activated_at": to_iso(state.activated_at),
        "time_to_activate_seconds": _tta(state.activated_at, account_base_time(state)),
        "milestones": _milestones(state.reached, ids),
        "traits": {k: v[0] for k, v in sorted(state.traits.items()) if k != "created_at"},
        "created_at": to_iso(trait(state.traits, "created_at")),
        "first_seen": to_iso(state.first_seen),
        "last_seen": to_iso(state.last_seen),
        "users": {
            "known": len(members),
            "activated": activated_users,
            "mean_activation_rate": round(sum(m.rate for _, m in members) / len(members), 6) if members else 0.0,
            "top": [
                {"user_id": uid, "activation_rate": m.rate, "role": m.role, "activated": m.activated}
                for uid, m in members[:MAX_USERS_IN_VIEW]
            ],
            "top_omitted": max(0, len(members) - MAX_USERS_IN_VIEW),
        },
        "rejected_over_limits": state.overflow,
        "swept_through": to_iso(swept_through(state, partition_swept) or None),
        "drift_alerts": [
            {
                "key": key,
                "kind": a.kind,
                "severity": a.severity,
                "user_id": a.user_id,
                "milestone": a.milestone,
                "opened_at": to_iso(a.opened_at),
                "evidence": a.evidence,
            }
            for key, a in alerts
        ],
        "drift_alerts_omitted": len(state.alerts) - len(alerts),
        "engagement": engagement_view(state.days, criteria.engagement, now_ms),
        "as_of": to_iso(now_ms),
    }
