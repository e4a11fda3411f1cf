"""Prometheus metrics of the worker (served at /metrics on the web port).

Labels are bounded sets (call types, reason codes, record kinds): never a user
or an account id.
"""

from __future__ import annotations

import functools

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)


@functools.cache
def counter_of(counter: Counter, *labels: str) -> Counter:
    """A labelled counter's child, looked up once per label set: ``labels()``
    checks the values and takes a lock each time, and the hot path counts
    every call. (Counters only: gauges are cleared, which drops children.)"""
    return counter.labels(*labels)


EVENTS = Counter("stream_events_total", "Segment calls decoded from the input topic", ["type"], registry=REGISTRY)
DLQ = Counter("stream_dlq_records_total", "Records sent to the dead-letter topic", ["reason"], registry=REGISTRY)
ACCOUNT_CALLS = Counter(
    "stream_account_calls_total",
    "Calls applied to account state, by outcome (applied, duplicate, rejected)",
    ["status"],
    registry=REGISTRY,
)
DUPLICATES = Counter(
    "stream_duplicates_skipped_total", "Calls skipped because they were already applied", registry=REGISTRY
)
CHANGES = Counter(
    "stream_activation_changes_total",
    "Records published on the activation-changes topic",
    ["kind", "level"],
    registry=REGISTRY,
)
TRIGGERS = Counter(
    "stream_lifecycle_triggers_total",
    "Records published on the lifecycle-triggers topic",
    ["kind"],
    registry=REGISTRY,
)
CRITERIA_VERSION = Gauge("stream_criteria_version", "Highest criteria version adopted", registry=REGISTRY)

# -------------------------------------------------------------- pipeline
PROCESSING_LATENCY = Histogram(
    "stream_processing_latency_seconds",
    "From a call's re-keyed message being written to its state being applied",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
EVENT_TO_OUTPUT = Histogram(
    "stream_event_to_output_seconds",
    "From an input's event time to its activation change record being published (includes replay age)",
    buckets=(0.1, 0.5, 1, 5, 30, 60, 300, 3600, 86400, 604800),
    registry=REGISTRY,
)
#: ``group``: ``tables`` (Faust's group: the stateful hops and tables) or
#: ``input`` (the first hop's own group on the input topic).
REBALANCES = Counter(
    "stream_rebalances_total", "Partition assignments received by this worker", ["group"], registry=REGISTRY
)
OFFSET_GAPS = Counter(
    "stream_offset_gaps_total",
    "Times an agent was handed a message past the next offset of its partition (offsets skipped)",
    ["topic"],
    registry=REGISTRY,
)
WORKER_READY = Gauge("stream_worker_ready", "1 when assigned and done restoring tables, else 0", registry=REGISTRY)
INPUT_COMMIT_FAILURES = Counter(
    "stream_input_commit_failures_total",
    "Input offsets the first hop could not commit (their messages are read again, and deduplicated)",
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "stream_consumer_lag_messages",
    "Messages not yet committed, per assigned partition",
    ["topic", "partition"],
    registry=REGISTRY,
)
TABLE_KEYS = Gauge("stream_table_keys", "Keys in this worker's active table partitions", ["table"], registry=REGISTRY)
#: The worker's tables: the ``table`` label of the recovery series.
TABLES = ("accounts", "users", "directory")
RECOVERY_REMAINING = Gauge(
    "stream_recovery_remaining_messages",
    "Changelog messages this worker still has to restore into its active table partitions (0 when restored)",
    ["table"],
    registry=REGISTRY,
)
RECOVERY_RESTORED = Counter(
    "stream_recovery_restored_messages_total",
    "Changelog messages restored into this worker's active table partitions (standby copies not counted)",
    ["table"],
    registry=REGISTRY,
)
for _table in TABLES:  # exported from the start, 0 until a restore says otherwise
    RECOVERY_REMAINING.labels(_table).set(0)
    RECOVERY_RESTORED.labels(_table)

# --------------------------------------------------------------- product
ACCOUNTS = Gauge("stream_accounts", "Accounts on this worker's partitions, by state", ["state"], registry=REGISTRY)
USERS = Gauge("stream_users", "Users on this worker's partitions, by state", ["state"], registry=REGISTRY)
ACCOUNTS_BY_RATE = Gauge(
    "stream_accounts_by_activation_rate",
    "Accounts per activation-rate bucket (lower bound)",
    ["bucket"],
    registry=REGISTRY,
)
USERS_BY_RATE = Gauge(
    "stream_users_by_activation_rate",
    "Users per activation-rate bucket (lower bound)",
    ["bucket"],
    registry=REGISTRY,
)
MILESTONE_REACHED = Gauge(
    "stream_milestone_reached",
    "Accounts or users that reached each milestone (adoption)",
    ["level", "milestone"],
    registry=REGISTRY,
)
ACCOUNTS_BY_ENGAGEMENT = Gauge(
    "stream_accounts_by_engagement_7d", "Accounts per 7-day weighted engagement band", ["band"], registry=REGISTRY
)

# ------------------------------------------------- drift alerts and time
DRIFT_ALERTS_OPEN = Gauge(
    "stream_drift_alerts_open",
    "Drift alerts open on this worker's partitions, by kind and severity",
    ["kind", "severity"],
    registry=REGISTRY,
)
DRIFT_ALERTS = Counter(
    "stream_drift_alerts_total",
    "Records published on the drift-alerts topic, by kind and status (open, updated, resolved)",
    ["kind", "status"],
    registry=REGISTRY,
)
WATERMARK = Gauge(
    "stream_watermark_seconds",
    "Event-time watermark (Unix seconds) of each account partition this worker owns",
    ["partition"],
    registry=REGISTRY,
)
SWEEPS = Counter(
    "stream_sweeps_total",
    "Midnights swept, per account partition (timer rules and drift alerts evaluated for each of its accounts)",
    registry=REGISTRY,
)
SWEEP_SECONDS = Histogram(
    "stream_sweep_duration_seconds",
    "How long one partition's sweep of one midnight took; the partition's calls wait for it",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)

# ------------------------------------------------------------------ KPIs
# Ratios do not add up across workers, so each KPI is exported as a numerator
# and a denominator: sum by (kpi) (numerator) / sum by (kpi) (denominator).
KPI_NUMERATOR = Gauge(
    "stream_kpi_numerator", "Numerator of each KPI over this worker's partitions", ["kpi"], registry=REGISTRY
)
KPI_DENOMINATOR = Gauge(
    "stream_kpi_denominator", "Denominator of each KPI over this worker's partitions", ["kpi"], registry=REGISTRY
)
KPI_COHORT_USERS = Gauge(
    "stream_kpi_cohort_users",
    "Users per signup month (cohort), total and activated",
    ["cohort", "state"],
    registry=REGISTRY,
)
KPI_MILESTONE_ADOPTERS = Gauge(
    "stream_kpi_milestone_adopters",
    "Monthly active users who reached each user milestone (feature adoption numerator)",
    ["milestone"],
    registry=REGISTRY,
)
KPI_ACTIVE_USERS_BY_ROLE = Gauge(
    "stream_kpi_active_users_by_role",
    "Monthly active users by role (organisational depth); roles outside the criteria's list count as 'other'",
    ["role"],
    registry=REGISTRY,
)
KPI_TIME_TO_ACTIVATE = Gauge(
    "stream_kpi_time_to_activate_seconds_bucket",
    "Activated users by time to activate, cumulative buckets (use histogram_quantile)",
    ["le"],
    registry=REGISTRY,
)
