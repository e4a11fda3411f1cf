"""Behaviour-driven lifecycle triggers for email and in-app tools (seed 003).

Nudges follow what users do, not a calendar: a milestone reached is
celebrated with the next step named, and a trial account that reaches the
activation threshold becomes a product-qualified lead (seed 004). Each trigger
fires once per condition and carries a deterministic id.

Triggers that depend on the absence of events (no first key action after 24 h,
stuck on a milestone, inactive N days) need event-time timers and are not here.
"""

from __future__ import annotations

from typing import Any

from stream.core.activation import Record, record_id
from stream.core.criteria import Criteria
from stream.core.state import AccountState, trait
from stream.core.timeutil import parse_timestamp_ms

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
                state.triggered[key] = parse_timestamp_ms(r["event_time"])
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
