"""Activation criteria: the versioned, product-owned definition of "activated".

Criteria evolve with the product (seed 000: "new feature launched? add it to
your activation criteria"), so they are data, validated strictly: a typo in a
criteria file must be refused at the door, naming the field, rather than
silently producing a milestone nobody can reach.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stream.core.engagement import EngagementRules
from stream.core.errors import CriteriaError
from stream.core.rules import AlertRules, KpiRules, LifecycleRules

Scalar = str | int | float | bool
Where = tuple[tuple[str, Scalar], ...]

_ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_MILESTONES = 200
MAX_EVENT_NAME = 200


@dataclass(frozen=True, slots=True)
class UserMilestone:
    """Reached by a user who did ``event`` (matching ``where``) ``min_count`` times."""

    id: str
    event: str
    min_count: int = 1
    where: Where = ()
    flagship: bool = False

    @property
    def signature(self) -> str:
        return signature(self.event, self.where)


@dataclass(frozen=True, slots=True)
class AccountMilestone:
    """An account-level milestone, in one of two shapes.

    * event rule: ``event`` done ``min_count`` times counted over all the
      account's users;
    * user rule: at least ``min_users`` users (or a ``min_share`` of the
      account's known users), optionally only users whose role is ``role``,
      reached the user milestone ``user_milestone``.
    """

    id: str
    event: str | None = None
    min_count: int = 1
    where: Where = ()
    user_milestone: str | None = None
    min_users: int | None = None
    min_share: float | None = None
    role: str | None = None
    flagship: bool = False

    @property
    def signature(self) -> str:
        assert self.event is not None
        return signature(self.event, self.where)


@dataclass(frozen=True, slots=True)
class CriteriaIndex:
    """Lookup tables built once per criteria version: the hot path asks "which
    rules does this event name touch" for every event."""

    user_by_event: dict[str, tuple[UserMilestone, ...]]
    account_by_event: dict[str, tuple[AccountMilestone, ...]]
    wheres_by_event: dict[str, tuple[tuple[str, Where], ...]]
    user_by_id: dict[str, UserMilestone]

    @classmethod
    def build(cls, users: tuple[UserMilestone, ...], accounts: tuple[AccountMilestone, ...]) -> CriteriaIndex:
        user_by_event: dict[str, list[UserMilestone]] = {}
        account_by_event: dict[str, list[AccountMilestone]] = {}
        wheres: dict[str, dict[str, Where]] = {}
        for um in users:
            user_by_event.setdefault(um.event, []).append(um)
            if um.where:
                wheres.setdefault(um.event, {})[um.signature] = um.where
        for am in accounts:
            if am.event is not None:
                account_by_event.setdefault(am.event, []).append(am)
                if am.where:
                    wheres.setdefault(am.event, {})[am.signature] = am.where
        return cls(
            user_by_event={k: tuple(v) for k, v in user_by_event.items()},
            account_by_event={k: tuple(v) for k, v in account_by_event.items()},
            wheres_by_event={k: tuple(v.items()) for k, v in wheres.items()},
            user_by_id={m.id: m for m in users},
        )


@dataclass(frozen=True, slots=True)
class Criteria:
    version: int
    user_milestones: tuple[UserMilestone, ...]
    account_milestones: tuple[AccountMilestone, ...]
    activation_threshold: float = 1.0
    engagement: EngagementRules = field(default_factory=EngagementRules)
    lifecycle: LifecycleRules = field(default_factory=LifecycleRules)
    alerts: AlertRules = field(default_factory=AlertRules)
    kpis: KpiRules = field(default_factory=KpiRules)
    #: Events that count as "key actions" (dormancy, first key action); empty:
    #: every event a milestone counts.
    explicit_key_events: tuple[str, ...] = ()
    #: The raw document, kept so it can be republished and stored verbatim.
    document: Mapping[str, Any] = field(default_factory=dict, compare=False)
    index: CriteriaIndex = field(init=False, repr=False, compare=False)

    key_events: frozenset[str] = field(init=False, repr=False, compare=False)
    #: Functional depth's key features: ``kpis.key_features`` or the key events.
    key_features: tuple[str, ...] = field(init=False, repr=False, compare=False)
    #: The milestone ids in document order (read for every call evaluated: built once).
    user_milestone_ids: tuple[str, ...] = field(init=False, repr=False, compare=False)
    account_milestone_ids: tuple[str, ...] = field(init=False, repr=False, compare=False)
    #: Flagship milestones, user ones first, and the user ones alone (drift
    #: rules read them for every account at every sweep).
    flagship_ids: tuple[str, ...] = field(init=False, repr=False, compare=False)
    user_flagship_ids: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", CriteriaIndex.build(self.user_milestones, self.account_milestones))
        milestone_events = [m.event for m in self.user_milestones] + [
            m.event for m in self.account_milestones if m.event is not None
        ]
        keys = self.explicit_key_events or tuple(dict.fromkeys(milestone_events))
        object.__setattr__(self, "key_events", frozenset(keys))
        object.__setattr__(self, "key_features", self.kpis.key_features or tuple(sorted(keys)))
        object.__setattr__(self, "user_milestone_ids", tuple(m.id for m in self.user_milestones))
        object.__setattr__(self, "account_milestone_ids", tuple(m.id for m in self.account_milestones))
        user_flagships = tuple(m.id for m in self.user_milestones if m.flagship)
        object.__setattr__(self, "user_flagship_ids", user_flagships)
        object.__setattr__(
            self, "flagship_ids", user_flagships + tuple(m.id for m in self.account_milestones if m.flagship)
        )

    def activation_count(self, total: int) -> int:
        """How many milestones out of ``total`` make "activated"."""
        return max(1, math.ceil(self.activation_threshold * total - 1e-9)) if total else 0


def canonical_value(value: Scalar) -> str:
    """The string form a property value is counted under (``true``, ``3``, ``email``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def signature(event: str, where: Where) -> str:
    """A stable name for "event filtered by where", used as a counter key."""
    if not where:
        return event
    return event + "|" + "&".join(f"{k}={canonical_value(v)}" for k, v in where)


# ----------------------------------------------------------------- parsing


def parse_criteria(doc: object) -> Criteria:
    """Validate a criteria document (already parsed from YAML/JSON).

    Raises :class:`CriteriaError` naming the first offending field.
    """
    if not isinstance(doc, Mapping):
        raise CriteriaError("(document)", "must be a mapping with version, user_milestones and account_milestones")
    _no_unknown_keys(
        doc,
        "",
        {
            "version",
            "activation_threshold",
            "user_milestones",
            "account_milestones",
            "engagement",
            "lifecycle",
            "alerts",
            "kpis",
            "key_events",
            "description",
        },
    )
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CriteriaError("version", "must be a positive integer")
    threshold = doc.get("activation_threshold", 1.0)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 < threshold <= 1:
        raise CriteriaError("activation_threshold", "must be a number in (0, 1]")

    users_raw = doc.get("user_milestones")
    if not isinstance(users_raw, list) or not users_raw:
        raise CriteriaError("user_milestones", "must be a non-empty list")
    seen: set[str] = set()
    user_ms = tuple(_parse_user(m, f"user_milestones[{i}]", seen) for i, m in enumerate(users_raw))
    user_ids = {m.id for m in user_ms}
    accounts_raw = doc.get("account_milestones")
    if not isinstance(accounts_raw, list) or not accounts_raw:
        raise CriteriaError("account_milestones", "must be a non-empty list")
    if len(users_raw) + len(accounts_raw) > MAX_MILESTONES:
        raise CriteriaError("(document)", f"at most {MAX_MILESTONES} milestones in all")

    account_ms = tuple(
        _parse_account(m, f"account_milestones[{i}]", seen, user_ids) for i, m in enumerate(accounts_raw)
    )
    return Criteria(
        version=version,
        user_milestones=user_ms,
        account_milestones=account_ms,
        activation_threshold=float(threshold),
        engagement=_parse_engagement(doc.get("engagement")),
        lifecycle=_parse_lifecycle(doc.get("lifecycle")),
        alerts=_parse_alerts(doc.get("alerts")),
        kpis=_parse_kpis(doc.get("kpis")),
        explicit_key_events=_event_names(doc.get("key_events", []), "key_events"),
        document=dict(doc),
    )


def _number(value: object, field_name: str, low: float, high: float | None = None, strict_low: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok:
        v = float(value)  # type: ignore[arg-type]
        ok = (v > low if strict_low else v >= low) and (high is None or v <= high)
    if not ok:
        bound = f"{'>' if strict_low else '>='} {low:g}" + (f" and <= {high:g}" if high is not None else "")
        raise CriteriaError(field_name, f"must be a number {bound}")
    return float(value)  # type: ignore[arg-type]


def _int_in(value: object, field_name: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise CriteriaError(field_name, f"must be an integer from {low} to {high}")
    return value


def _event_names(value: object, field_name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(
        isinstance(e, str) and e.strip() and len(e) <= MAX_EVENT_NAME for e in value
    ):
        raise CriteriaError(field_name, "must be a list of event names")
    return tuple(value)


def _section(doc: object, name: str, allowed: set[str]) -> Mapping[str, Any]:
    if doc is None:
        return {}
    if not isinstance(doc, Mapping):
        raise CriteriaError(name, "must be a mapping")
    _no_unknown_keys(doc, name, allowed)
    return doc


def _parse_lifecycle(section: object) -> LifecycleRules:
    """``lifecycle: {trial_plans, no_first_key_action_hours, stuck_days, inactive_days}``."""
    d = LifecycleRules()
    s = _section(section, "lifecycle", {"trial_plans", "no_first_key_action_hours", "stuck_days", "inactive_days"})
    plans = s.get("trial_plans", list(d.trial_plans))
    if not isinstance(plans, list) or not all(isinstance(p, str) and p for p in plans):
        raise CriteriaError("lifecycle.trial_plans", "must be a list of plan names")
    return LifecycleRules(
        trial_plans=tuple(plans),
        no_first_key_action_hours=_int_in(
            s.get("no_first_key_action_hours", d.no_first_key_action_hours),
            "lifecycle.no_first_key_action_hours",
            1,
            24 * 28,
        ),
        stuck_days=_int_in(s.get("stuck_days", d.stuck_days), "lifecycle.stuck_days", 1, 56),
        inactive_days=_int_in(s.get("inactive_days", d.inactive_days), "lifecycle.inactive_days", 1, 56),
    )


#: alerts section: name in the file -> (field, kind) ; kind "share", "num", "days"
_ALERT_FIELDS: dict[str, dict[str, tuple[str, str]]] = {
    "engagement_drop": {
        "share": ("drop_share", "share"),
        "critical_share": ("drop_critical_share", "share"),
        "min_baseline": ("drop_min_baseline", "num"),
    },
    "high_engagement_low_activation": {
        "min_engagement_7d": ("high_engagement_7d", "num"),
        "max_activation_rate": ("high_engagement_max_rate", "share"),
    },
    "stalled_activation": {
        "max_activation_rate": ("stalled_max_rate", "share"),
        "after_days": ("stalled_after_days", "days"),
    },
    "flagship_unadopted": {"after_days": ("flagship_after_days", "days")},
    "activation_regression": {
        "min_drop": ("regression_min_drop", "share"),
        "critical_drop": ("regression_critical_drop", "share"),
    },
    "dormant": {"after_days": ("dormant_after_days", "days56")},
    "single_champion": {"min_users": ("champion_min_users", "count")},
    "shallow_org": {
        "min_active_users": ("shallow_min_active_users", "count"),
        "manager_roles": ("manager_roles", "roles"),
    },
}


def _parse_alerts(section: object) -> AlertRules:
    """``alerts: {cooldown_days, active_days, <kind>: {threshold: value}}``; defaults in :class:`AlertRules`."""
    s = _section(section, "alerts", {"cooldown_days", "active_days", *_ALERT_FIELDS})
    values: dict[str, Any] = {}
    if "cooldown_days" in s:
        values["cooldown_days"] = _int_in(s["cooldown_days"], "alerts.cooldown_days", 0, 56)
    if "active_days" in s:
        values["active_days"] = _int_in(s["active_days"], "alerts.active_days", 1, 28)
    for kind, fields in _ALERT_FIELDS.items():
        sub = _section(s.get(kind), f"alerts.{kind}", set(fields))
        for key, value in sub.items():
            name, shape = fields[key]
            path = f"alerts.{kind}.{key}"
            if shape == "share":
                values[name] = _number(value, path, 0, 1)
            elif shape == "num":
                values[name] = _number(value, path, 0)
            elif shape == "days":
                values[name] = _int_in(value, path, 1, 3650)
            elif shape == "days56":
                values[name] = _int_in(value, path, 1, 56)
            elif shape == "count":
                values[name] = _int_in(value, path, 1, 1_000_000)
            else:
                if not isinstance(value, list) or not all(isinstance(r, str) and r for r in value):
                    raise CriteriaError(path, "must be a list of role names")
                values[name] = tuple(value)
    rules = AlertRules(**values)
    if rules.drop_critical_share > rules.drop_share:
        raise CriteriaError("alerts.engagement_drop.critical_share", "must not exceed share")
    return rules


def _parse_kpis(section: object) -> KpiRules:
    d = KpiRules()
    s = _section(
        section,
        "kpis",
        {
            "subscription_event",
            "cancel_event",
            "period_days",
            "deep_usage_share",
            "key_features",
            "shallow_depth_below",
            "roles",
            "cohort_months",
        },
    )
    for name in ("subscription_event", "cancel_event"):
        value = s.get(name, getattr(d, name))
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_EVENT_NAME:
            raise CriteriaError(f"kpis.{name}", "must be an event name")
    roles = s.get("roles", list(d.roles))
    if not isinstance(roles, list) or not all(isinstance(r, str) and r for r in roles) or "other" in roles:
        raise CriteriaError("kpis.roles", "must be a list of role names (not 'other')")
    return KpiRules(
        subscription_event=s.get("subscription_event", d.subscription_event),
        cancel_event=s.get("cancel_event", d.cancel_event),
        period_days=_int_in(s.get("period_days", d.period_days), "kpis.period_days", 1, 28),
        deep_usage_share=_number(s.get("deep_usage_share", d.deep_usage_share), "kpis.deep_usage_share", 0, 1, True),
        key_features=_event_names(s.get("key_features", []), "kpis.key_features"),
        shallow_depth_below=_number(
            s.get("shallow_depth_below", d.shallow_depth_below), "kpis.shallow_depth_below", 0, 1
        ),
        roles=tuple(roles),
        cohort_months=_int_in(s.get("cohort_months", d.cohort_months), "kpis.cohort_months", 1, 120),
    )


def _parse_engagement(section: object) -> EngagementRules:
    """``engagement: {weights: {event: w}, default_weight, half_life_days, trend_tolerance}``."""
    if section is None:
        return EngagementRules()
    if not isinstance(section, Mapping):
        raise CriteriaError("engagement", "must be a mapping")
    _no_unknown_keys(section, "engagement", {"weights", "default_weight", "half_life_days", "trend_tolerance"})
    weights = section.get("weights", {})
    if not isinstance(weights, Mapping):
        raise CriteriaError("engagement.weights", "must be a mapping of event name to weight")
    parsed: list[tuple[str, float]] = []
    for event, w in weights.items():
        if not isinstance(event, str) or not event or len(event) > MAX_EVENT_NAME:
            raise CriteriaError("engagement.weights", "event names must be non-empty strings")
        parsed.append((event, _number(w, f"engagement.weights.{event}", 0)))
    return EngagementRules(
        weights=tuple(sorted(parsed)),
        default_weight=_number(section.get("default_weight", 0), "engagement.default_weight", 0),
        half_life_days=_number(section.get("half_life_days", 7), "engagement.half_life_days", 0, 3650, True),
        trend_tolerance=_number(section.get("trend_tolerance", 0.1), "engagement.trend_tolerance", 0, 1),
    )


def _no_unknown_keys(m: Mapping[str, Any], path: str, allowed: set[str]) -> None:
    for key in m:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            raise CriteriaError(where, f"unknown field (allowed: {', '.join(sorted(allowed))})")


def _parse_id(m: Mapping[str, Any], path: str, seen: set[str]) -> str:
    mid = m.get("id")
    if not isinstance(mid, str) or not _ID_RE.match(mid):
        raise CriteriaError(f"{path}.id", "must match [a-z][a-z0-9_]* (at most 64 characters)")
    if mid in seen:
        raise CriteriaError(f"{path}.id", f"duplicate milestone id {mid!r}")
    seen.add(mid)
    return mid


def _parse_event(m: Mapping[str, Any], path: str) -> str:
    event = m.get("event")
    if not isinstance(event, str) or not event.strip() or len(event) > MAX_EVENT_NAME:
        raise CriteriaError(f"{path}.event", f"must be a non-empty event name of at most {MAX_EVENT_NAME} characters")
    return event


def _parse_positive_int(m: Mapping[str, Any], key: str, path: str, default: int | None) -> int | None:
    value = m.get(key, default)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise CriteriaError(f"{path}.{key}", "must be a positive integer")
    return value


def _parse_where(m: Mapping[str, Any], path: str) -> Where:
    where = m.get("where")
    if where is None:
        return ()
    if not isinstance(where, Mapping) or not where:
        raise CriteriaError(f"{path}.where", "must be a non-empty mapping of property name to value")
    items: list[tuple[str, Scalar]] = []
    for k, v in where.items():
        if not isinstance(k, str) or not k:
            raise CriteriaError(f"{path}.where", "property names must be non-empty strings")
        if not isinstance(v, str | int | float | bool):
            raise CriteriaError(f"{path}.where.{k}", "must be a string, number or boolean")
        items.append((k, v))
    return tuple(sorted(items))


def _parse_flagship(m: Mapping[str, Any], path: str) -> bool:
    flagship = m.get("flagship", False)
    if not isinstance(flagship, bool):
        raise CriteriaError(f"{path}.flagship", "must be true or false")
    return flagship


def _parse_user(m: object, path: str, seen: set[str]) -> UserMilestone:
    if not isinstance(m, Mapping):
        raise CriteriaError(path, "must be a mapping")
    _no_unknown_keys(m, path, {"id", "event", "min_count", "where", "flagship", "description"})
    mid = _parse_id(m, path, seen)
    if "user_milestone" in m:
        raise CriteriaError(f"{path}.user_milestone", "only account milestones can build on user milestones")
    min_count = _parse_positive_int(m, "min_count", path, 1)
    assert min_count is not None
    return UserMilestone(
        id=mid,
        event=_parse_event(m, path),
        min_count=min_count,
        where=_parse_where(m, path),
        flagship=_parse_flagship(m, path),
    )


def _parse_account(m: object, path: str, seen: set[str], user_ids: set[str]) -> AccountMilestone:
    if not isinstance(m, Mapping):
        raise CriteriaError(path, "must be a mapping")
    _no_unknown_keys(
        m,
        path,
        {
            "id",
            "event",
            "min_count",
            "where",
            "user_milestone",
            "min_users",
            "min_share",
            "role",
            "flagship",
            "description",
        },
    )
    mid = _parse_id(m, path, seen)
    flagship = _parse_flagship(m, path)
    has_event, has_user = "event" in m, "user_milestone" in m
    if has_event == has_user:
        raise CriteriaError(path, "needs exactly one of 'event' or 'user_milestone'")
    if has_event:
        for key in ("min_users", "min_share", "role"):
            if key in m:
                raise CriteriaError(f"{path}.{key}", "only applies to a 'user_milestone' rule")
        min_count = _parse_positive_int(m, "min_count", path, 1)
        assert min_count is not None
        return AccountMilestone(
            id=mid, event=_parse_event(m, path), min_count=min_count, where=_parse_where(m, path), flagship=flagship
        )
    for key in ("min_count", "where"):
        if key in m:
            raise CriteriaError(f"{path}.{key}", "only applies to an 'event' rule")
    ref = m.get("user_milestone")
    if not isinstance(ref, str) or ref not in user_ids:
        raise CriteriaError(
            f"{path}.user_milestone", f"must name one of the user milestones ({', '.join(sorted(user_ids))})"
        )
    if "min_users" in m and "min_share" in m:
        raise CriteriaError(path, "give either 'min_users' or 'min_share', not both")
    min_users = _parse_positive_int(m, "min_users", path, None)
    min_share = m.get("min_share")
    if min_share is not None and (
        isinstance(min_share, bool) or not isinstance(min_share, int | float) or not 0 < min_share <= 1
    ):
        raise CriteriaError(f"{path}.min_share", "must be a number in (0, 1]")
    if min_users is None and min_share is None:
        min_users = 1
    role = m.get("role")
    if role is not None and (not isinstance(role, str) or not role):
        raise CriteriaError(f"{path}.role", "must be a non-empty string")
    return AccountMilestone(
        id=mid,
        user_milestone=ref,
        min_users=min_users,
        min_share=float(min_share) if min_share is not None else None,
        role=role,
        flagship=flagship,
    )


def load_criteria_text(text: str, source: str = "criteria") -> Criteria:
    """Parse YAML (or JSON, a subset of YAML) text and validate it."""
    import yaml  # local import: only the shell and the CLI read files

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else source
        raise CriteriaError(f"(yaml {where})", str(getattr(exc, "problem", exc))) from exc
    return parse_criteria(doc)


def load_criteria_bytes(raw: bytes, source: str = "criteria") -> Criteria:
    """A criteria message's value (YAML or JSON, UTF-8)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CriteriaError("(document)", "not UTF-8") from None
    return load_criteria_text(text, source)


def criteria_summary(c: Criteria) -> dict[str, Any]:
    return {
        "version": c.version,
        "activation_threshold": c.activation_threshold,
        "user_milestones": list(c.user_milestone_ids),
        "account_milestones": list(c.account_milestone_ids),
    }
