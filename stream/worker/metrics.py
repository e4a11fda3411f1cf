"""Prometheus metrics of the worker (served at /metrics on the web port).

Labels are bounded sets (call types, reason codes, record kinds): never a user
or an account id.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

REGISTRY = CollectorRegistry(auto_describe=True)

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
