"""Behaviour-driven lifecycle triggers for email and in-app tools (seed 003).

Nudges follow what users do, not a calendar: a milestone reached is
celebrated with the next step named, and a trial account that reaches the
activation threshold becomes a product-qualified lead (seed 004). Each trigger
fires once per condition and carries a deterministic id.

Triggers that depend on the absence of events (no first key action after 24 h,
stuck on a milestone, inactive N days) are evaluated by the midnight sweeps
(:func:`sweep_triggers`), as of that midnight: so they fire at the first UTC
midnight of event time at which their condition holds (day granularity).
"""

from __future__ import annotations

from typing import Any

from stream.core.activation import Record, account_reached_as_of, rate_of, record_id
from stream.core.criteria import Criteria
from stream.core.daybits import last_on_or_before
from stream.core.state import AccountState, trait
from stream.core.timeutil import MS_PER_DAY, parse_timestamp_ms, to_iso

Trigger = dict[str, Any]


def triggers_for(records: list[Record], state: AccountState, criteria: Criteria) -> list[Trigger]:
    """The triggers that the change records of one call (or re-evaluation) fire."""
    out: list[Trigger] = []
    for r in records:
        if r["kind"] == "milestone_reached" and r["level"] == "user":
            missing = r["missing"]
            out.append(
                _trigger(
                    "milestone_celebration",
                    r,
                    state,
                    milestone=r["milestone"],
                    next_milestone=missing[0] if missing else None,
                )
            )
        elif r["kind"] == "activated" and r["level"] == "account":
            plan = trait(state.traits, "plan")
            key = f"pql:v{criteria.version}"
            if plan in criteria.lifecycle.trial_plans and key not in state.triggered:
                state.mark_triggered(key, parse_timestamp_ms(r["event_time"]))
                out.append(_trigger("pql", r, state, milestone=None, next_milestone=None, plan=plan))
    return out


def _trigger(kind: str, r: Record, state: AccountState, **extra: Any) -> Trigger:
    trigger = {
        "id": record_id("trigger", kind, r["account_id"], r["user_id"], extra.get("milestone"), r["criteria_version"]),
        "kind": kind,
        "account_id": r["account_id"],
        "user_id": r["user_id"],
        "criteria_version": r["criteria_version"],
        "event_time": r["event_time"],
        "activation_rate": r["new_rate"],
        "account_activation_rate": state.rate,
        "missing": r["missing"],
    }
    trigger.update(extra)
    return trigger


def account_rate_as_of(state: AccountState, criteria: Criteria, at: int) -> float:
    """The account's rate counting only milestones reached before ``at``, on
    what was known then."""
    return rate_of(account_reached_as_of(state, criteria, at), criteria.account_milestone_ids)


def _timer_trigger(
    kind: str, state: AccountState, uid: str, key: str, at: int, criteria: Criteria, account_rate: float, **extra: Any
) -> Trigger:
    member = state.members[uid]
    reached = [m for m in criteria.user_milestone_ids if member.reached.get(m, at) < at]
    missing = [m for m in criteria.user_milestone_ids if m not in reached]
    trigger: Trigger = {
        "id": record_id("trigger", kind, state.account_id, uid, key),
        "kind": kind,
        "account_id": state.account_id,
        "user_id": uid,
        "criteria_version": criteria.version,
        "event_time": to_iso(at),
        "activation_rate": round(len(reached) / len(criteria.user_milestone_ids), 6),
        "account_activation_rate": account_rate,
        "reached": reached,
        "missing": missing,
        "next_milestone": missing[0] if missing else None,
        "milestone": None,
    }
    trigger.update(extra)
    return trigger


def sweep_triggers(state: AccountState, criteria: Criteria, at: int) -> list[Trigger]:
    """Absence-driven nudges as of midnight ``at``, each once per condition."""
    rules = criteria.lifecycle
    day = at // MS_PER_DAY - 1
    triggered = state.triggered
    no_key_after = rules.no_first_key_action_hours * 3_600_000
    stuck_after = rules.stuck_days * MS_PER_DAY
    milestones = len(criteria.user_milestone_ids)
    # (uid, kind, key, details), each member's in rule order: fired in user
    # order once the walk is done (a stable sort keeps the rule order), so the
    # members need not be sorted for a sweep that fires nothing
    due: list[tuple[str, str, str, dict[str, Any]]] = []
    for uid, m in state.members.items():
        if m.since is None or m.since >= at:
            continue
        # Each condition below holds at every sweep once it holds (for every
        # member who never acted, at every midnight): the key is looked up
        # before the trigger's details are formatted.
        # signed up, no key action after N hours
        if m.since + no_key_after <= at and (m.first_key is None or m.first_key >= at):
            key = f"no_first_key:{uid}"
            if key not in triggered:
                due.append((uid, "no_first_key_action", key, {"signed_up_at": to_iso(m.since)}))
        # started, then stuck: some milestones reached, none for N days, some missing
        if m.reached:
            times = [t for t in m.reached.values() if t < at]
            if times and len(times) < milestones and max(times) <= at - stuck_after:
                reached = {mid for mid, t in m.reached.items() if t < at}
                stuck_on = next(mid for mid in criteria.user_milestone_ids if mid not in reached)
                key = f"stuck:{uid}:{stuck_on}:v{criteria.version}"
                if key not in triggered:
                    details = {
                        "milestone": stuck_on,
                        "last_progress_at": to_iso(max(times)),
                        "days_stuck": (at - max(times)) // MS_PER_DAY,
                    }
                    due.append((uid, "stuck", key, details))
        # inactive N days: once per inactivity episode (named by its last active day)
        active = m.active
        if active.bits:
            last = last_on_or_before(active.newest, active.bits, day)
            if last is not None and day - last >= rules.inactive_days:
                key = f"inactive:{uid}:{last}"
                if key not in triggered:
                    details = {
                        "last_active_day": (to_iso(last * MS_PER_DAY) or "")[:10],
                        "days_inactive": day - last,
                    }
                    due.append((uid, "inactive", key, details))
    out: list[Trigger] = []
    if due:
        # the same for every trigger of this sweep (the members do not change during it)
        account_rate = account_rate_as_of(state, criteria, at)
        for uid, kind, key, details in sorted(due, key=lambda d: d[0]):
            state.mark_triggered(key, at)
            out.append(_timer_trigger(kind, state, uid, key, at, criteria, account_rate, **details))
    horizon = at - 70 * MS_PER_DAY
    state.forget_triggered([k for k, t in state.triggered.items() if k.startswith("inactive:") and t < horizon])
    return out
