"""Metric names and label sets are an interface: dashboards and alert rules use them."""

from __future__ import annotations

from stream.worker import metrics
from stream.worker.gauges import engagement_bucket, rate_bucket

EXPECTED = {
    "stream_events": ("type",),
    "stream_dlq_records": ("reason",),
    "stream_account_calls": ("status",),
    "stream_duplicates_skipped": (),
    "stream_activation_changes": ("kind", "level"),
    "stream_lifecycle_triggers": ("kind",),
    "stream_criteria_version": (),
    "stream_processing_latency_seconds": (),
    "stream_event_to_output_seconds": (),
    "stream_rebalances": (),
    "stream_worker_ready": (),
    "stream_consumer_lag_messages": ("topic", "partition"),
    "stream_table_keys": ("table",),
    "stream_accounts": ("state",),
    "stream_users": ("state",),
    "stream_accounts_by_activation_rate": ("bucket",),
    "stream_users_by_activation_rate": ("bucket",),
    "stream_milestone_reached": ("level", "milestone"),
    "stream_accounts_by_engagement_7d": ("band",),
    "stream_drift_alerts_open": ("kind", "severity"),
    "stream_drift_alerts": ("kind", "status"),
    "stream_watermark_seconds": ("partition",),
    "stream_sweeps": (),
    "stream_kpi_numerator": ("kpi",),
    "stream_kpi_denominator": ("kpi",),
    "stream_kpi_cohort_users": ("cohort", "state"),
    "stream_kpi_milestone_adopters": ("milestone",),
    "stream_kpi_active_users_by_role": ("role",),
    "stream_kpi_time_to_activate_seconds_bucket": ("le",),
}


def test_metric_names_and_labels_are_stable():
    found = {}
    for collector in list(metrics.REGISTRY._collector_to_names):
        found[collector._name] = tuple(collector._labelnames)
    assert found == EXPECTED


def test_no_label_can_hold_an_id():
    for labels in EXPECTED.values():
        assert not {"account", "account_id", "user", "user_id"} & set(labels)


def test_buckets():
    assert [rate_bucket(r) for r in (0, 0.19, 0.2, 0.5, 0.999999, 1.0)] == ["0.0", "0.0", "0.2", "0.4", "0.8", "1.0"]
    assert [engagement_bucket(t) for t in (0, 0.5, 1, 99, 100, 5000)] == ["0", "0", "1-9", "10-99", "100-999", "1000+"]
