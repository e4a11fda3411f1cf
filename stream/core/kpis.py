"""Activation and engagement KPIs (seeds 001/002), exact and mergeable.

Accounts are spread over partitions and workers, so each computes a *partial*
(sums, counts, sorted value lists) for its own accounts as of its partition's
event-time clock; partials merge by summing and concatenating (associative and
commutative, merging the partials of any split equals the partial of the whole)
and :func:`finalize` turns the merged partial into ratios. Ratios are never
averaged: every KPI is a numerator over a denominator, which is also how the
worker exports them to Prometheus (``sum(numerator) / sum(denominator)``).

Definitions. D = day of ``as_of_ms`` (UTC), P = ``kpis.period_days``; the
period is days [D-P+1, D], the previous period [D-2P+1, D-P]. Users are the
members of the accounts (a user in two accounts counts in each).

* activation per cohort: users by UTC month of ``Member.since`` ("unknown"
  when None), total and ``Member.activated``; accounts likewise by the month of
  ``account_base_time`` and ``activated_at``. The view shows the last
  ``kpis.cohort_months`` months up to the newest as_of month.
* visitor→signup: ``converted_visitors / visitors`` (inputs, counted elsewhere).
* signup→subscription: accounts with a ``kpis.subscription_event`` / accounts.
* stickiness: (Σ over period days of DAU / P) / MAU; DAU = members active that
  day, MAU = members active on any period day. Always within [0, 1].
* churn: base = accounts first seen before the period start and without a
  ``kpis.cancel_event`` before it; churned = base accounts with a cancel event
  on a period day. retention: accounts with an event in the previous period
  that also have one in the period / accounts with one in the previous period.
* feature adoption: per user milestone, MAU members who reached it at or before
  as_of / MAU.
* Deep Usage Index: MAU members who reached (by as_of) at least
  ``kpis.deep_usage_share`` of the user milestones (at least one) / MAU; with no
  user milestones nobody is deep.
* time to activate: ``max(0, activated_at - since)`` seconds over members with
  both (accounts: ``activated_at - account_base_time``); mean, median (mean of
  the two middle values for an even count) and p90 (nearest rank: the
  ⌈0.9·n⌉-th smallest value), exact over all values.
* functional depth of an account: distinct ``criteria.key_features`` with a
  count > 0 on a period day / number of key features (None if there are none);
  shallow when < ``kpis.shallow_depth_below``. Globally, over the accounts with
  any event in the period: shallow accounts / those accounts, and mean depth.
* organisational depth: MAU members by role (roles outside ``kpis.roles``,
  or none, count as "other").
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from stream.core.activation import account_base_time
from stream.core.criteria import Criteria
from stream.core.engagement import DayCounts, day_of
from stream.core.state import AccountState
from stream.core.timeutil import MS_PER_DAY, to_iso

Partial = dict[str, Any]

#: Upper bounds (seconds) of the time-to-activate histogram: 1h, 6h, 1d, 3d, 7d, 14d, 30d, 90d.
TTA_BUCKETS = ("3600", "21600", "86400", "259200", "604800", "1209600", "2592000", "7776000", "+Inf")
UNKNOWN_COHORT = "unknown"
#: Plain integer counters of a partial (summed on merge).
# fmt: off
_COUNTERS = (
    "parts", "visitors", "converted_visitors", "accounts", "activated_accounts", "subscribed_accounts", "users",
    "activated_users", "dau_sum", "mau", "churn_base", "churned", "retention_base", "retained", "deep_users",
    "active_accounts", "shallow_accounts", "depth_used", "depth_slots",
)
# fmt: on
#: Name -> counter mappings (summed per key on merge); cohorts map to [total, activated].
_MAPS = ("adopters", "roles", "user_cohorts", "account_cohorts")
_LISTS = ("tta_users_ms", "tta_accounts_ms")

HOW = {
    "activation_users": "users (members of accounts) with Member.activated / all users",
    "activation_accounts": "accounts with an activation time / all accounts",
    "visitor_signup": "converted visitors / visitors (counted outside the account records)",
    "signup_subscription": "accounts with a subscription event / all accounts",
    "stickiness": "mean DAU over the period (sum of daily active members / period days) / MAU",
    "churn": "accounts seen before the period, not cancelled before it, that cancelled in it / those accounts",
    "retention": "accounts active in the previous period and active again in this one / active in the previous",
    "feature_adoption": "per user milestone: MAU members who reached it by as_of / MAU",
    "deep_usage": "MAU members who reached at least deep_usage_share of the user milestones / MAU",
    "shallow_accounts": "accounts active in the period with functional depth < shallow_depth_below / active accounts",
    "functional_depth": "mean over active accounts of key features used in the period / key features",
    "account_depth": "distinct key features with an event in the period / key features",
    "organisational_depth": "MAU members by role (roles outside kpis.roles count as 'other') / MAU",
    "time_to_activate_users": "seconds from signup (since) to activation, over activated members with both times",
    "time_to_activate_accounts": "seconds from account creation (else first seen) to activation",
    "cohorts": "per signup month (UTC): activated / total, users by Member.since, accounts by creation",
}


def _period(as_of_ms: int, p: int) -> tuple[int, int]:
    """First and last day of the period ending on as_of's day."""
    last = day_of(as_of_ms)
    return last - p + 1, last


def _active_between(days: DayCounts, first: int, last: int) -> bool:
    return any(first <= d <= last and any(n > 0 for n in counts.values()) for d, counts in days.items())


def _features_used(days: DayCounts, features: tuple[str, ...], first: int, last: int) -> list[str]:
    wanted = set(features)
    used = {e for d, counts in days.items() if first <= d <= last for e, n in counts.items() if n > 0 and e in wanted}
    return sorted(used)


def _month(ms: int | None) -> str:
    if ms is None:
        return UNKNOWN_COHORT
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m")
    except (OverflowError, OSError, ValueError):
        return UNKNOWN_COHORT


def _deep_needed(share: float, n: int) -> int | None:
    """Milestones a user needs for deep usage (None: nobody can be deep). Comparing
    k / n with the share avoids ``0.3 * 10 > 3``-style float surprises."""
    return next((k for k in range(1, n + 1) if k / n >= share or k == n), None)


def _settings(criteria: Criteria) -> dict[str, Any]:
    """What rendering needs; the thresholds are echoed in the view."""
    k = criteria.kpis
    names = ("period_days", "cohort_months", "deep_usage_share", "shallow_depth_below")
    return {"criteria_version": criteria.version, **{n: getattr(k, n) for n in names}}


def _empty() -> Partial:
    """The identity of :func:`merge_partials`."""
    p: Partial = dict.fromkeys(_COUNTERS, 0)
    p.update({name: {} for name in _MAPS})
    p.update({name: [] for name in _LISTS})
    p.update({"as_of": {"min": None, "max": None}, "criteria_versions": [], "settings": None})
    return p


def _bump(counter: dict[str, Any], key: str, total: int, activated: int) -> None:
    cell = counter.setdefault(key, [0, 0])
    cell[0] += total
    cell[1] += int(activated)


def _add_account(p: Partial, state: AccountState, criteria: Criteria, as_of_ms: int) -> None:
    k = criteria.kpis
    first, last = _period(as_of_ms, k.period_days)
    start_ms = first * MS_PER_DAY
    ids = criteria.user_milestone_ids
    needed = _deep_needed(k.deep_usage_share, len(ids))
    base = account_base_time(state)
    p["accounts"] += 1
    p["activated_accounts"] += int(state.activated_at is not None)
    _bump(p["account_cohorts"], _month(base), 1, state.activated_at is not None)
    sub = state.events.get(k.subscription_event)
    p["subscribed_accounts"] += int(sub is not None and sub.n > 0)
    if state.activated_at is not None and base is not None:
        p["tta_accounts_ms"].append(max(0, state.activated_at - base))
    # churn and retention
    cancel = state.events.get(k.cancel_event)
    cancelled_before = cancel is not None and bool(cancel.times) and cancel.times[0] < start_ms
    if state.first_seen is not None and state.first_seen < start_ms and not cancelled_before:
        p["churn_base"] += 1
        p["churned"] += int(any(first <= d <= last and c.get(k.cancel_event, 0) > 0 for d, c in state.days.items()))
    active_now = _active_between(state.days, first, last)
    if _active_between(state.days, first - k.period_days, first - 1):
        p["retention_base"] += 1
        p["retained"] += int(active_now)
    # functional depth
    if active_now:
        used = len(_features_used(state.days, criteria.key_features, first, last))
        n = len(criteria.key_features)
        p["active_accounts"] += 1
        p["depth_used"] += used
        p["depth_slots"] += n
        p["shallow_accounts"] += int(n > 0 and used / n < k.shallow_depth_below)
    # users
    for m in state.members.values():
        p["users"] += 1
        p["activated_users"] += int(m.activated)
        _bump(p["user_cohorts"], _month(m.since), 1, m.activated)
        if m.activated_at is not None and m.since is not None:
            p["tta_users_ms"].append(max(0, m.activated_at - m.since))
        active_days = len(m.active.days(first, last))
        if not active_days:
            continue
        p["dau_sum"] += active_days
        p["mau"] += 1
        role = m.role if m.role in k.roles else "other"
        p["roles"][role] += 1
        reached = [mid for mid in ids if m.reached.get(mid, as_of_ms + 1) <= as_of_ms]
        for mid in reached:
            p["adopters"][mid] += 1
        p["deep_users"] += int(needed is not None and len(reached) >= needed)


def kpi_partial(
    accounts: Iterable[AccountState],
    criteria: Criteria,
    as_of_ms: int,
    visitors: int = 0,
    converted_visitors: int = 0,
) -> Partial:
    """One partition's (or worker's) partial as of its event-time clock.

    ``visitors`` / ``converted_visitors`` are added as given: pass them on one
    partial only, or they are counted once per partial they are passed to.
    """
    p = _empty()
    p.update(
        parts=1,
        visitors=visitors,
        converted_visitors=converted_visitors,
        as_of={"min": as_of_ms, "max": as_of_ms},
        criteria_versions=[criteria.version],
        settings=_settings(criteria),
        adopters=dict.fromkeys(criteria.user_milestone_ids, 0),
        roles=dict.fromkeys((*criteria.kpis.roles, "other"), 0),
    )
    for state in accounts:
        _add_account(p, state, criteria, as_of_ms)
    for name in _LISTS:
        p[name].sort()
    return p


def merge_partials(partials: Iterable[Partial]) -> Partial:
    """Sum counters, add maps key by key, merge sorted lists, widen the as_of
    range. Settings (used only to render) are those of the newest criteria
    version; ``criteria_versions`` lists all versions merged, so a view mixing
    versions during a rollout says so."""
    parts = list(partials)
    out = _empty()
    for p in parts:
        for name in _COUNTERS:
            out[name] += p[name]
        for name in _MAPS:
            target = out[name]
            for key, value in p[name].items():
                if isinstance(value, list):
                    _bump(target, key, value[0], value[1])
                else:
                    target[key] = target.get(key, 0) + value
        for name in _LISTS:
            out[name].extend(p[name])
    for name in _LISTS:
        out[name].sort()
    stamps = [p["as_of"] for p in parts if p["as_of"]["min"] is not None]
    out["as_of"] = {
        "min": min((a["min"] for a in stamps), default=None),
        "max": max((a["max"] for a in stamps), default=None),
    }
    out["criteria_versions"] = sorted({v for p in parts for v in p["criteria_versions"]})
    settings = [p["settings"] for p in parts if p["settings"] is not None]
    out["settings"] = max(settings, key=lambda x: (x["criteria_version"], json.dumps(x, sort_keys=True)), default=None)
    return out


def _ratio(num: float, den: float, how: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"value": num / den if den else None, "numerator": num, "denominator": den}
    if how is not None:
        out["how"] = how
    return out


def _tta_stats(values_ms: list[int], how: str) -> dict[str, Any]:
    """Mean (as value = numerator / denominator), median and p90 in seconds."""
    n = len(values_ms)
    out = _ratio(sum(values_ms) / 1000, n, how)
    out["mean"] = out["value"]
    if n:
        mid = n // 2
        out["median"] = values_ms[mid] / 1000 if n % 2 else (values_ms[mid - 1] + values_ms[mid]) / 2000
        out["p90"] = values_ms[(9 * n + 9) // 10 - 1] / 1000
    else:
        out["median"] = out["p90"] = None
    return out


def _window(p: Partial) -> tuple[str, str] | None:
    """(oldest, newest) "YYYY-MM" of the last cohort_months months to the newest as_of."""
    newest = _month(p["as_of"]["max"])
    if newest == UNKNOWN_COHORT or p["settings"] is None:
        return None
    index = int(newest[:4]) * 12 + int(newest[5:]) - 1 - (p["settings"]["cohort_months"] - 1)
    return f"{index // 12:04d}-{index % 12 + 1:02d}", newest


def _in_window(cohort: str, window: tuple[str, str] | None) -> bool:
    """All cohorts without a window; else the window's "YYYY-MM" months (not "unknown")."""
    return window is None or (cohort != UNKNOWN_COHORT and window[0] <= cohort <= window[1])


def _cohorts(counter: dict[str, list[int]], window: tuple[str, str] | None) -> dict[str, Any]:
    shown = {c: _ratio(a, t) for c, (t, a) in sorted(counter.items()) if _in_window(c, window)}
    if UNKNOWN_COHORT in counter:  # users without a signup time are always shown
        t, a = counter[UNKNOWN_COHORT]
        shown[UNKNOWN_COHORT] = _ratio(a, t)
    return shown


def _flat(p: Partial) -> dict[str, tuple[float, float]]:
    """(numerator, denominator) of each KPI exported as a pair."""
    pd = p["settings"]["period_days"] if p["settings"] else 0
    tu, ta = p["tta_users_ms"], p["tta_accounts_ms"]
    return {
        "activation_users": (p["activated_users"], p["users"]),
        "activation_accounts": (p["activated_accounts"], p["accounts"]),
        "visitor_signup": (p["converted_visitors"], p["visitors"]),
        "signup_subscription": (p["subscribed_accounts"], p["accounts"]),
        "stickiness": (p["dau_sum"] / pd if pd else 0, p["mau"]),
        "churn": (p["churned"], p["churn_base"]),
        "retention": (p["retained"], p["retention_base"]),
        "deep_usage": (p["deep_users"], p["mau"]),
        "shallow_accounts": (p["shallow_accounts"], p["active_accounts"]),
        "time_to_activate_users": (sum(tu) / 1000, len(tu)),
        "time_to_activate_accounts": (sum(ta) / 1000, len(ta)),
    }


def finalize(partial: Partial) -> dict[str, Any]:
    """The GET /kpis view: each KPI's value (None when its denominator is 0),
    numerator, denominator and how it is computed."""
    p = partial
    window = _window(p)
    kpis: dict[str, Any] = {
        name: _ratio(num, den, HOW[name])
        for name, (num, den) in _flat(p).items()
        if not name.startswith("time_to_activate")
    }
    kpis["feature_adoption"] = {
        "how": HOW["feature_adoption"],
        "denominator": p["mau"],
        "by_milestone": {mid: _ratio(n, p["mau"]) for mid, n in sorted(p["adopters"].items())},
    }
    kpis["functional_depth"] = _ratio(p["depth_used"], p["depth_slots"], HOW["functional_depth"])
    kpis["functional_depth"]["accounts"] = p["active_accounts"]
    kpis["organisational_depth"] = {
        "how": HOW["organisational_depth"],
        "denominator": p["mau"],
        "by_role": {r: _ratio(n, p["mau"]) for r, n in sorted(p["roles"].items())},
    }
    kpis["time_to_activate_users"] = _tta_stats(p["tta_users_ms"], HOW["time_to_activate_users"])
    kpis["time_to_activate_accounts"] = _tta_stats(p["tta_accounts_ms"], HOW["time_to_activate_accounts"])
    kpis["cohorts"] = {
        "how": HOW["cohorts"],
        "window": None if window is None else list(window),
        "users": _cohorts(p["user_cohorts"], window),
        "accounts": _cohorts(p["account_cohorts"], window),
    }
    return {
        "as_of": {"min": to_iso(p["as_of"]["min"]), "max": to_iso(p["as_of"]["max"])},
        "parts": p["parts"],
        "criteria_versions": p["criteria_versions"],
        "settings": p["settings"],
        "accounts": p["accounts"],
        "users": p["users"],
        "kpis": kpis,
    }


def prometheus_samples(partial: Partial) -> dict[str, Any]:
    """Values for the stream_kpi_* gauges (label value -> sample), as plain data.

    ``feature_adoption`` has a denominator (MAU) only: its numerators are the
    per-milestone ``milestone_adopters``. Cohorts are the "YYYY-MM" months of
    the cohort window; the worker should remove label sets that left it.
    """
    flat = _flat(partial)
    numerator = {k: float(n) for k, (n, _) in flat.items()}
    denominator = {k: float(d) for k, (_, d) in flat.items()}
    denominator["feature_adoption"] = float(partial["mau"])
    window = _window(partial)
    cohorts = {
        c: {"activated": a, "total": t}
        for c, (t, a) in sorted(partial["user_cohorts"].items())
        if window is not None and _in_window(c, window)
    }
    tta = partial["tta_users_ms"]
    buckets = {le: len(tta) if le == "+Inf" else bisect.bisect_right(tta, int(le) * 1000) for le in TTA_BUCKETS}
    return {
        "numerator": numerator,
        "denominator": denominator,
        "cohort_users": cohorts,
        "milestone_adopters": dict(partial["adopters"]),
        "active_users_by_role": dict(partial["roles"]),
        "time_to_activate_seconds_bucket": buckets,
    }


def account_kpis(state: AccountState, criteria: Criteria, as_of_ms: int) -> dict[str, Any]:
    """The GET /accounts/{id}/kpis view: the same definitions over one account."""
    k = criteria.kpis
    partial = kpi_partial([state], criteria, as_of_ms)
    view = finalize(partial)["kpis"]
    first, last = _period(as_of_ms, k.period_days)
    used = _features_used(state.days, criteria.key_features, first, last)
    n = len(criteria.key_features)
    depth = len(used) / n if n else None
    base = account_base_time(state)
    tta = None if state.activated_at is None or base is None else max(0, state.activated_at - base) / 1000
    return {
        "account_id": state.account_id,
        "criteria_version": criteria.version,
        "as_of": to_iso(as_of_ms),
        "period": {"days": k.period_days, "first": to_iso(first * MS_PER_DAY), "last": to_iso(last * MS_PER_DAY)},
        "stickiness": view["stickiness"],
        "feature_adoption": view["feature_adoption"],
        "deep_usage": view["deep_usage"],
        "functional_depth": {
            **_ratio(len(used), n, HOW["account_depth"]),
            "features_used": used,
            "features_unused": [f for f in criteria.key_features if f not in used],
            "active_in_period": _active_between(state.days, first, last),
            "shallow": depth is not None and depth < k.shallow_depth_below,
            "shallow_below": k.shallow_depth_below,
        },
        "organisational_depth": view["organisational_depth"],
        "time_to_activate_users": view["time_to_activate_users"],
        "time_to_activate_account_seconds": tta,
        "activation_by_cohort": {"how": HOW["cohorts"], "users": _cohorts(partial["user_cohorts"], None)},
        "subscribed": view["signup_subscription"]["numerator"] > 0,
        "users": len(state.members),
    }
