"""Drift alerts: accounts drifting away from value, evaluated in event time.

The seeds' point is that activation and engagement are different signals, and
that the accounts to worry about drift away from value while usage looks fine.
Each rule is evaluated for an account *as of* a midnight ``M`` of event time,
reading only facts dated before ``M`` (day counts, reach times, day masks), so
the result does not depend on how far past ``M`` the stream already is.

An alert is a small state machine per alert key (kind, plus the user or the
milestone it is about): opened once, re-emitted only when its severity changes,
resolved when the condition clears, and not reopened within the cooldown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stream.core.activation import Record, account_base_time, account_reached_as_of, rate_of, record_id
from stream.core.criteria import Criteria
from stream.core.daybits import count_days, last_on_or_before
from stream.core.engagement import window_score
from stream.core.records import Alert, Member
from stream.core.state import AccountState
from stream.core.timeutil import MS_PER_DAY, to_iso

KINDS = (
    "engagement_drop",
    "high_engagement_low_activation",
    "stalled_activation",
    "flagship_unadopted",
    "activation_regression",
    "dormant",
    "single_champion",
    "shallow_org",
)


@dataclass(frozen=True, slots=True)
class Condition:
    """A rule that holds: how bad, and the numbers that show it."""

    severity: str
    evidence: dict[str, Any]
    user_id: str | None = None
    milestone: str | None = None


def _date(day: int) -> str:
    iso = to_iso(day * MS_PER_DAY)
    assert iso is not None
    return iso[:10]


@dataclass(slots=True)
class _MemberFacts:
    """What the member rules need, gathered in one walk over the members
    known before the midnight: a sweep asks it of every member of every
    account, and most members never had a key event, so their day masks are
    not read at all."""

    known: int = 0
    #: Flagship user milestones some known member reached before the midnight.
    flagships_reached: set[str] = field(default_factory=set)
    #: The latest key day of any known member (as of the day before the midnight).
    last_key_day: int | None = None
    #: Activated members and their last key day, in member order.
    key_days: list[tuple[str, int]] = field(default_factory=list)
    #: Members with a key event in the active window, in member order.
    active: dict[str, Member] = field(default_factory=dict)


def _member_facts(members: dict[str, Member], criteria: Criteria, at: int, day: int) -> _MemberFacts:
    facts = _MemberFacts()
    flagships = criteria.user_flagship_ids
    first_active_day = day - criteria.alerts.active_days + 1
    for uid, m in members.items():
        if m.since is None or m.since >= at:
            continue
        facts.known += 1
        for mid in flagships:
            if mid not in facts.flagships_reached and (t := m.reached.get(mid)) is not None and t < at:
                facts.flagships_reached.add(mid)
        key = m.key
        if not key.bits:
            continue
        last = last_on_or_before(key.newest, key.bits, day)
        if last is not None:
            if facts.last_key_day is None or last > facts.last_key_day:
                facts.last_key_day = last
            if m.activated_at is not None and m.activated_at < at:
                facts.key_days.append((uid, last))
        if count_days(key.newest, key.bits, first_active_day, day) > 0:
            facts.active[uid] = m
    return facts


def conditions(state: AccountState, criteria: Criteria, at: int) -> dict[str, Condition]:
    """Every alert condition that holds for the account as of midnight ``at``."""
    rules = criteria.alerts
    day = at // MS_PER_DAY - 1  # the last whole day before ``at``
    out: dict[str, Condition] = {}
    base = account_base_time(state)
    if base is None or base >= at:
        return out
    as_of = account_reached_as_of(state, criteria, at)
    rate = rate_of(as_of, criteria.account_milestone_ids)
    facts = _member_facts(state.members, criteria, at, day)
    current = window_score(state.days, criteria.engagement, day - 6, day)
    previous = window_score(state.days, criteria.engagement, day - 34, day - 7)
    days_since_start = (at - base) / MS_PER_DAY

    # 1. engagement_drop: this week against the weekly average of the 28 days before
    baseline = previous / 4
    if baseline >= rules.drop_min_baseline and current < rules.drop_share * baseline:
        out["engagement_drop"] = Condition(
            "critical" if current < rules.drop_critical_share * baseline else "warning",
            {
                "engagement_7d": round(current, 3),
                "baseline_weekly": round(baseline, 3),
                "share": round(current / baseline, 4),
                "threshold_share": rules.drop_share,
                "critical_share": rules.drop_critical_share,
            },
        )
    # 2. high_engagement_low_activation: heavy use, none of the valuable parts (seed 000's "Lumen")
    if current >= rules.high_engagement_7d and rate < rules.high_engagement_max_rate:
        out["high_engagement_low_activation"] = Condition(
            "critical" if rate == 0 else "warning",
            {
                "engagement_7d": round(current, 3),
                "activation_rate": rate,
                "threshold_engagement_7d": rules.high_engagement_7d,
                "threshold_activation_rate": rules.high_engagement_max_rate,
            },
        )
    # 3. stalled_activation: under X% activated N days after the start
    if days_since_start >= rules.stalled_after_days and rate < rules.stalled_max_rate:
        out["stalled_activation"] = Condition(
            "critical" if days_since_start >= 2 * rules.stalled_after_days else "warning",
            {
                "activation_rate": rate,
                "days_since_start": int(days_since_start),
                "threshold_activation_rate": rules.stalled_max_rate,
                "after_days": rules.stalled_after_days,
            },
        )
    # 4. flagship_unadopted: a flagship milestone not reached N days after it became available
    for mid in criteria.flagship_ids:
        available = max(state.introduced.get(mid, 0), base)
        waited = (at - available) / MS_PER_DAY
        # a user milestone counts when any known member reached it first
        reached = mid in (facts.flagships_reached if mid in criteria.index.user_by_id else as_of)
        if waited >= rules.flagship_after_days and not reached:
            out[f"flagship_unadopted:{mid}"] = Condition(
                "critical" if waited >= 2 * rules.flagship_after_days else "warning",
                {
                    "available_since": to_iso(available),
                    "days_waited": int(waited),
                    "after_days": rules.flagship_after_days,
                },
                milestone=mid,
            )
    # 6. dormant: no key event from the account (or from an activated user) for N days
    last = facts.last_key_day
    if last is not None and day - last >= rules.dormant_after_days:
        idle = day - last
        out["dormant"] = Condition(
            "critical" if idle >= 2 * rules.dormant_after_days else "warning",
            {"last_key_day": _date(last), "days_without_key_event": idle, "after_days": rules.dormant_after_days},
        )
    for uid, last_user in facts.key_days:
        if day - last_user >= rules.dormant_after_days:
            idle = day - last_user
            out[f"dormant:{uid}"] = Condition(
                "critical" if idle >= 2 * rules.dormant_after_days else "warning",
                {
                    "last_key_day": _date(last_user),
                    "days_without_key_event": idle,
                    "after_days": rules.dormant_after_days,
                },
                user_id=uid,
            )
    # 7. organisational depth: one user carries the account / no manager is active
    active = facts.active
    if facts.known >= rules.champion_min_users and len(active) == 1:
        (champion,) = active
        out["single_champion"] = Condition(
            "warning",
            {
                "active_users": 1,
                "known_users": facts.known,
                "champion": champion,
                "active_days": rules.active_days,
                "min_users": rules.champion_min_users,
            },
        )
    if len(active) >= rules.shallow_min_active_users and not any(
        m.role in rules.manager_roles for m in active.values()
    ):
        out["shallow_org"] = Condition(
            "warning",
            {
                "active_users": len(active),
                "active_roles": sorted({m.role or "unknown" for m in active.values()}),
                "manager_roles": list(rules.manager_roles),
                "min_active_users": rules.shallow_min_active_users,
            },
        )
    # 5. activation_regression stays open while the rate is below what it was
    open_regression = state.alerts.get("activation_regression")
    if open_regression is not None and rate < open_regression.evidence["old_rate"]:
        out["activation_regression"] = Condition(open_regression.severity, open_regression.evidence)
    return out


def _record(state: AccountState, key: str, alert: Alert, status: str, at: int, version: int) -> Record:
    return {
        "id": record_id("alert", state.account_id, key, status, alert.severity, at),
        "kind": alert.kind,
        "status": status,
        "severity": alert.severity,
        "account_id": state.account_id,
        "user_id": alert.user_id,
        "milestone": alert.milestone,
        "evidence": alert.evidence,
        "criteria_version": version,
        "opened_at": to_iso(alert.opened_at),
        "event_time": to_iso(at),
    }


def transition(
    state: AccountState, key: str, condition: Condition | None, at: int, criteria: Criteria
) -> Record | None:
    """Advance one alert key's state machine; the record to publish, if any."""
    current = state.alerts.get(key)
    if current is None:
        if condition is None:
            return None
        resolved = state.resolved.get(key)
        if resolved is not None and at - resolved < criteria.alerts.cooldown_days * MS_PER_DAY:
            return None  # cooling down: not reopened yet
        alert = Alert(
            key.split(":", 1)[0], condition.severity, at, condition.user_id, condition.milestone, condition.evidence
        )
        state.alerts[key] = alert
        return _record(state, key, alert, "open", at, criteria.version)
    if condition is None:
        del state.alerts[key]
        state.resolved[key] = at
        return _record(state, key, current, "resolved", at, criteria.version)
    if condition.severity != current.severity:
        current.severity = condition.severity
        current.evidence = condition.evidence
        return _record(state, key, current, "updated", at, criteria.version)
    return None


def sweep_alerts(state: AccountState, criteria: Criteria, at: int) -> list[Record]:
    """Evaluate every rule as of midnight ``at`` and move each alert accordingly."""
    found = conditions(state, criteria, at)
    out: list[Record] = []
    for key in sorted(set(found) | set(state.alerts)):
        record = transition(state, key, found.get(key), at, criteria)
        if record is not None:
            out.append(record)
    horizon = at - 60 * MS_PER_DAY
    for key in [k for k, t in state.resolved.items() if t < horizon]:
        del state.resolved[key]
    return out


def regression_alert(
    state: AccountState, old_rate: float, old_version: int, criteria: Criteria, at: int
) -> Record | None:
    """The account's rate fell because the criteria evolved (seed 000: a
    customer "on the 2022 version of your 2025 product")."""
    drop = old_rate - state.rate
    if drop < criteria.alerts.regression_min_drop or drop <= 0:
        return None
    condition = Condition(
        "critical" if drop >= criteria.alerts.regression_critical_drop else "warning",
        {
            "old_rate": old_rate,
            "new_rate": state.rate,
            "drop": round(drop, 6),
            "from_version": old_version,
            "to_version": criteria.version,
            "min_drop": criteria.alerts.regression_min_drop,
        },
    )
    current = state.alerts.get("activation_regression")
    if current is not None:  # a second change while open: keep the original baseline
        condition = Condition(
            condition.severity, {**condition.evidence, "old_rate": max(old_rate, current.evidence["old_rate"])}
        )
        if current.severity == condition.severity:
            current.evidence = condition.evidence
            return None
    return transition(state, "activation_regression", condition, at, criteria)
