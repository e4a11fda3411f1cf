"""What happens to an account at the two definite points of its partition's
stream that are not events: a criteria change, and a midnight sweep."""

from __future__ import annotations

from dataclasses import dataclass, field

from stream.core.activation import Record, recompute
from stream.core.alerts import regression_alert, sweep_alerts
from stream.core.criteria import Criteria
from stream.core.lifecycle import Trigger, sweep_triggers, triggers_for
from stream.core.state import AccountState, UserState


@dataclass(slots=True)
class Produced:
    """Output records of one step, by topic."""

    records: list[Record] = field(default_factory=list)
    triggers: list[Trigger] = field(default_factory=list)
    alerts: list[Record] = field(default_factory=list)

    def extend(self, other: Produced) -> None:
        self.records += other.records
        self.triggers += other.triggers
        self.alerts += other.alerts


def adopt_criteria(state: AccountState, users: dict[str, UserState], criteria: Criteria, at: int) -> Produced:
    """Re-evaluate the account under new criteria; a rate that fell because of
    the change opens an ``activation_regression`` alert."""
    old_rate, old_version = state.rate, state.criteria_version
    records = recompute(state, users, criteria, at)
    out = Produced(records, triggers_for(records, state, criteria))
    if old_version and old_version < criteria.version:
        alert = regression_alert(state, old_rate, old_version, criteria, at)
        if alert is not None:
            out.alerts.append(alert)
    return out


def sweep_account(state: AccountState, criteria: Criteria, midnight: int) -> Produced:
    """Timer rules as of ``midnight``, at most once per account and midnight
    (the account's own mark makes a replayed sweep a no-op).

    Only accounts with a call dated before the midnight are swept: an account
    whose first calls come just after it may exist when the sweep runs or not,
    depending on how far its partition had got, so it starts at the next one.

    The mark moves only when the sweep changed the account (fired, moved an
    alert, forgot an old one): most sweeps change nothing, and a mark moved
    for them alone made the worker rewrite every account of a partition each
    midnight. A sweep that changed nothing, run again on the same state,
    changes nothing again, so it needs no mark; the partition's clock says how
    far its sweeps have got (see :func:`swept_through`)."""
    if state.swept >= midnight or state.first_seen is None or state.first_seen >= midnight:
        return Produced()
    triggered, resolved = len(state.triggered), len(state.resolved)
    out = Produced(triggers=sweep_triggers(state, criteria, midnight), alerts=sweep_alerts(state, criteria, midnight))
    if out.triggers or out.alerts or len(state.triggered) != triggered or len(state.resolved) != resolved:
        state.swept = midnight
    return out


def swept_through(state: AccountState, partition_swept: int) -> int:
    """The last midnight whose sweep covered the account: its partition's, once
    the account had a call before it (else the last that changed it)."""
    if state.first_seen is not None and state.first_seen < partition_swept:
        return max(state.swept, partition_swept)
    return state.swept
