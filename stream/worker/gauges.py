"""Gauges refreshed from the worker's own state (not from events).

Every worker reports only the partitions it owns right now, so a PromQL
``sum`` over workers counts each account once; on a revocation the gauges are
zeroed at once, not left with a partition another worker now reports too.

Consumer lag is the fetch response's high watermark (which the embedded broker
reports correctly, unlike its ListOffsets answer) minus the committed offset,
never negative.

Recovery progress is read from Faust's recovery service, which refreshes it
itself (stream/worker/recovery.py): the app's timers only start once the first
recovery is over, which is when it matters least.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stream.core.alerts import KINDS
from stream.core.engagement import engagement_view
from stream.core.kpis import merge_partials, prometheus_samples
from stream.core.state import AccountState
from stream.worker import metrics

if TYPE_CHECKING:
    from stream.worker.app import ActivationWorker

log = logging.getLogger("stream.gauges")

REFRESH_SECONDS = 15.0
RATE_BUCKETS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
ENGAGEMENT_BUCKETS = ((0.0, "0"), (1.0, "1-9"), (10.0, "10-99"), (100.0, "100-999"), (1000.0, "1000+"))


def rate_bucket(rate: float) -> str:
    """The lower bound of the bucket a rate falls in (1.0 has its own bucket)."""
    label = RATE_BUCKETS[0]
    for bound in RATE_BUCKETS:
        if rate >= bound - 1e-9:
            label = bound
    return f"{label:.1f}"


def engagement_bucket(total: float) -> str:
    label = ENGAGEMENT_BUCKETS[0][1]
    for bound, name in ENGAGEMENT_BUCKETS:
        if total >= bound:
            label = name
    return label


def zero_product_gauges() -> None:
    for gauge in (
        metrics.ACCOUNTS,
        metrics.USERS,
        metrics.ACCOUNTS_BY_RATE,
        metrics.USERS_BY_RATE,
        metrics.MILESTONE_REACHED,
        metrics.ACCOUNTS_BY_ENGAGEMENT,
        metrics.TABLE_KEYS,
        metrics.DRIFT_ALERTS_OPEN,
        metrics.WATERMARK,
    ):
        gauge.clear()


def refresh(worker: ActivationWorker) -> None:
    """Recompute every state gauge from the partitions this worker owns."""
    accounts: Counter[str] = Counter()
    users: Counter[str] = Counter()
    by_rate: Counter[str] = Counter()
    users_by_rate: Counter[str] = Counter()
    reached: Counter[tuple[str, str]] = Counter()
    by_engagement: Counter[str] = Counter()
    open_alerts: Counter[tuple[str, str]] = Counter()
    # owned active partitions only (not standby copies): each account counted once over workers
    by_partition = {p: worker.partition_states(p) for p in worker.owned_partitions(worker.settings.account_topic)}
    account_keys = sum(len(states) for states in by_partition.values())
    for state in (s for states in by_partition.values() for s in states):
        account_id = state.account_id
        criteria = worker.criteria_of_version(state.criteria_version)
        accounts["activated" if state.activated_at is not None else "not_activated"] += 1
        by_rate[rate_bucket(state.rate)] += 1
        for milestone in state.reached:
            reached[("account", milestone)] += 1
        for member in state.members.values():
            users["activated" if member.activated else "not_activated"] += 1
            users_by_rate[rate_bucket(member.rate)] += 1
            for milestone in member.reached:
                reached[("user", milestone)] += 1
        window = engagement_view(state.days, criteria.engagement, worker.clock_of_account(account_id))["window_7d"]
        by_engagement[engagement_bucket(window["total"])] += 1
        for alert in state.alerts.values():
            open_alerts[(alert.kind, alert.severity)] += 1
    zero_product_gauges()
    for kind in KINDS:
        for severity in ("warning", "critical"):
            metrics.DRIFT_ALERTS_OPEN.labels(kind, severity).set(open_alerts[(kind, severity)])
    for partition, clock in list(worker.clocks.items()):
        metrics.WATERMARK.labels(str(partition)).set(clock.floor / 1000)
    for label, n in accounts.items():
        metrics.ACCOUNTS.labels(label).set(n)
    for label, n in users.items():
        metrics.USERS.labels(label).set(n)
    for bucket in RATE_BUCKETS:
        metrics.ACCOUNTS_BY_RATE.labels(f"{bucket:.1f}").set(by_rate[f"{bucket:.1f}"])
        metrics.USERS_BY_RATE.labels(f"{bucket:.1f}").set(users_by_rate[f"{bucket:.1f}"])
    for (level, milestone), n in reached.items():
        metrics.MILESTONE_REACHED.labels(level, milestone).set(n)
    for _bound, name in ENGAGEMENT_BUCKETS:
        metrics.ACCOUNTS_BY_ENGAGEMENT.labels(name).set(by_engagement[name])
    metrics.TABLE_KEYS.labels("accounts").set(account_keys)
    metrics.TABLE_KEYS.labels("users").set(worker.active_key_count(worker.users))
    metrics.TABLE_KEYS.labels("directory").set(worker.active_key_count(worker.directory))
    refresh_kpis(worker, by_partition)
    refresh_lag(worker)


def refresh_kpis(worker: ActivationWorker, by_partition: dict[int, list[AccountState]]) -> None:
    """KPI numerators and denominators over the partitions this worker owns
    (from the states already read for the other gauges)."""
    samples = prometheus_samples(merge_partials(worker.kpi_partials(by_partition)))
    for gauge in (
        metrics.KPI_NUMERATOR,
        metrics.KPI_DENOMINATOR,
        metrics.KPI_COHORT_USERS,
        metrics.KPI_MILESTONE_ADOPTERS,
        metrics.KPI_ACTIVE_USERS_BY_ROLE,
        metrics.KPI_TIME_TO_ACTIVATE,
    ):
        gauge.clear()
    for kpi, value in samples["numerator"].items():
        metrics.KPI_NUMERATOR.labels(kpi).set(value)
    for kpi, value in samples["denominator"].items():
        metrics.KPI_DENOMINATOR.labels(kpi).set(value)
    for cohort, counts in samples["cohort_users"].items():
        for state, n in counts.items():
            metrics.KPI_COHORT_USERS.labels(cohort, state).set(n)
    for milestone, n in samples["milestone_adopters"].items():
        metrics.KPI_MILESTONE_ADOPTERS.labels(milestone).set(n)
    for role, n in samples["active_users_by_role"].items():
        metrics.KPI_ACTIVE_USERS_BY_ROLE.labels(role).set(n)
    for le, n in samples["time_to_activate_seconds_bucket"].items():
        metrics.KPI_TIME_TO_ACTIVATE.labels(le).set(n)


def refresh_lag(worker: ActivationWorker) -> None:
    consumer = worker.app.consumer
    metrics.CONSUMER_LAG.clear()
    for tp in consumer.assignment():
        try:
            highwater = consumer.highwater(tp)
        except Exception:  # not fetched yet
            continue
        if highwater is None or highwater < 0:
            continue
        committed = consumer._committed_offset.get(tp)  # Faust's own record of what it committed
        lag = max(0, highwater - (committed if committed is not None else 0))
        metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(lag)
    reader = worker.input_reader  # the input topic is read apart from Faust (stream/worker/input_reader.py)
    if reader is not None:
        for partition, lag in reader.lag.items():
            metrics.CONSUMER_LAG.labels(worker.settings.topics.events, str(partition)).set(lag)


def recovery_remaining(
    highwaters: Mapping[tuple[str, int], int | None],
    offsets: Mapping[tuple[str, int], int | None],
    table_of_topic: Mapping[str, str],
) -> dict[str, int]:
    """Changelog messages left to restore, per table (every table of
    ``table_of_topic`` present, 0 when nothing is left).

    ``highwaters`` and ``offsets`` are Faust's, by changelog partition: the
    last offset in the changelog and the last offset restored (both -1 when
    none). Each partition counts ``highwater - offset``, never below 0. A
    partition whose highwater or offset is not known yet counts 0, as in
    Faust's own ``active_remaining``; topics that are no table's changelog
    are ignored.
    """
    remaining = dict.fromkeys(table_of_topic.values(), 0)
    for tp, highwater in highwaters.items():
        table = table_of_topic.get(tp[0])
        offset = offsets.get(tp)
        if table is None or highwater is None or offset is None:
            continue
        remaining[table] += max(0, highwater - offset)
    return remaining


def refresh_recovery(tables: Any) -> None:
    """Set ``stream_recovery_remaining_messages`` from the recovery of this
    worker's active changelog partitions (``tables``: the app's table
    manager). Never raises: a gauge must not take the worker down."""
    try:
        recovery = tables.recovery
        table_of_topic = {table.changelog_topic.get_topic_name(): name for name, table in tables.items()}
        remaining = recovery_remaining(recovery.active_highwaters, recovery.active_offsets, table_of_topic)
        for table, n in remaining.items():
            metrics.RECOVERY_REMAINING.labels(table).set(n)
    except Exception as exc:
        log.warning("recovery gauge refresh failed: %r", exc)


def count_restored(recovery: Any, table: str, tp: tuple[str, int]) -> None:
    """Count one changelog message restored into ``table`` if ``tp`` is one of
    the worker's active partitions (standby copies follow their changelog all
    the time: that is not a restore). Never raises."""
    try:
        if tp in recovery.active_tps:
            metrics.RECOVERY_RESTORED.labels(table).inc()
    except Exception as exc:
        log.warning("recovery counter failed: %r", exc)
