"""Thresholds of the timer rules, drift alerts and KPIs, as parsed from the
criteria file's ``alerts``, ``lifecycle`` and ``kpis`` sections.

They live with the criteria (not in the environment) because they are product
decisions that change with the product, are versioned with it, and must be the
same for the live worker, offline replay and the verifier.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MANAGER_ROLES = ("manager", "executive", "admin", "owner")
DEFAULT_KPI_ROLES = ("member", "manager", "executive", "admin", "owner")


@dataclass(frozen=True, slots=True)
class AlertRules:
    """Drift alert thresholds (``alerts:`` in the criteria file)."""

    #: After a resolution the same alert does not reopen for this many days.
    cooldown_days: int = 2
    # engagement_drop: 7-day engagement vs the previous 28 days' weekly average
    drop_share: float = 0.5
    drop_critical_share: float = 0.25
    drop_min_baseline: float = 10.0
    # high_engagement_low_activation
    high_engagement_7d: float = 100.0
    high_engagement_max_rate: float = 0.5
    # stalled_activation
    stalled_max_rate: float = 0.5
    stalled_after_days: int = 30
    # flagship_unadopted
    flagship_after_days: int = 14
    # activation_regression: smallest rate fall that counts
    regression_min_drop: float = 0.01
    regression_critical_drop: float = 0.25
    # dormant: no key event for this many days
    dormant_after_days: int = 14
    # single_champion: at least this many known users, one active
    champion_min_users: int = 3
    # shallow_org: at least this many active users, none in a manager role
    shallow_min_active_users: int = 3
    manager_roles: tuple[str, ...] = DEFAULT_MANAGER_ROLES
    #: "Active" for single_champion / shallow_org: a key event in this many days.
    active_days: int = 7


@dataclass(frozen=True, slots=True)
class LifecycleRules:
    """Lifecycle trigger settings (``lifecycle:`` in the criteria file)."""

    #: Account plans (group trait ``plan``) that count as trials for ``pql``.
    trial_plans: tuple[str, ...] = ("trial",)
    no_first_key_action_hours: int = 24
    stuck_days: int = 7
    inactive_days: int = 14


@dataclass(frozen=True, slots=True)
class KpiRules:
    """KPI settings (``kpis:`` in the criteria file)."""

    subscription_event: str = "Subscription Started"
    cancel_event: str = "Subscription Cancelled"
    #: Length of the KPI period (MAU, churn, retention, adoption), at most 28.
    period_days: int = 28
    #: Deep Usage Index: share of key milestones a user must have reached.
    deep_usage_share: float = 0.5
    #: Key features for functional depth; empty: the events of the milestones.
    key_features: tuple[str, ...] = ()
    shallow_depth_below: float = 0.2
    #: Roles reported by name in organisational depth; others count as "other".
    roles: tuple[str, ...] = DEFAULT_KPI_ROLES
    #: Cohorts (signup months) reported, newest first.
    cohort_months: int = 12
