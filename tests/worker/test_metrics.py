"""Metric names and label sets are an interface: dashboards and alert rules use them."""

from __future__ import annotations

from stream.worker import metrics
from stream.worker.gauges import count_restored, engagement_bucket, rate_bucket, recovery_remaining, refresh_recovery

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
    "stream_rebalances": ("group",),
    "stream_offset_gaps": ("topic",),
    "stream_input_commit_failures": (),
    "stream_worker_ready": (),
    "stream_consumer_lag_messages": ("topic", "partition"),
    "stream_table_keys": ("table",),
    "stream_recovery_remaining_messages": ("table",),
    "stream_recovery_restored_messages": ("table",),
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
    "stream_sweep_duration_seconds": (),
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


def test_a_counter_child_is_looked_up_once_and_counts_in_the_registry():
    child = metrics.counter_of(metrics.DLQ, "test_reason")
    assert metrics.counter_of(metrics.DLQ, "test_reason") is child
    before = metrics.REGISTRY.get_sample_value("stream_dlq_records_total", {"reason": "test_reason"})
    child.inc()
    metrics.counter_of(metrics.DLQ, "test_reason").inc()
    assert metrics.REGISTRY.get_sample_value("stream_dlq_records_total", {"reason": "test_reason"}) == before + 2


def test_buckets():
    assert [rate_bucket(r) for r in (0, 0.19, 0.2, 0.5, 0.999999, 1.0)] == ["0.0", "0.0", "0.2", "0.4", "0.8", "1.0"]
    assert [engagement_bucket(t) for t in (0, 0.5, 1, 99, 100, 5000)] == ["0", "0", "1-9", "10-99", "100-999", "1000+"]


TOPIC_TABLES = {
    "app-accounts-changelog": "accounts",
    "app-users-changelog": "users",
    "app-directory-changelog": "directory",
}


def test_recovery_remaining_sums_each_table_and_is_never_negative():
    highwaters = {
        ("app-accounts-changelog", 0): 99,
        ("app-accounts-changelog", 1): 9,
        ("app-users-changelog", 0): 4,  # offset past the highwater (aborted transactions): 0, not -1
        ("app-users-changelog", 1): 20,
        ("app-directory-changelog", 0): -1,  # empty changelog
    }
    offsets = {
        ("app-accounts-changelog", 0): -1,  # nothing restored yet: 100 messages to go
        ("app-accounts-changelog", 1): 9,  # done
        ("app-users-changelog", 0): 5,
        ("app-users-changelog", 1): 17,
        ("app-directory-changelog", 0): -1,
    }
    assert recovery_remaining(highwaters, offsets, TOPIC_TABLES) == {"accounts": 100, "users": 3, "directory": 0}


def test_recovery_remaining_ignores_unknown_topics_and_unknown_offsets():
    highwaters = {
        ("app-accounts-changelog", 0): 10,
        ("app-accounts-changelog", 1): None,  # highwater not built yet
        ("app-users-changelog", 0): 10,  # offset not built yet
        ("product-events", 0): 500,  # not a changelog
    }
    offsets = {("app-accounts-changelog", 0): 4, ("app-accounts-changelog", 1): 3, ("app-users-changelog", 0): None}
    assert recovery_remaining(highwaters, offsets, TOPIC_TABLES) == {"accounts": 6, "users": 0, "directory": 0}
    assert recovery_remaining({}, {}, TOPIC_TABLES) == {"accounts": 0, "users": 0, "directory": 0}


class _Topic:
    def __init__(self, name):
        self.name = name

    def get_topic_name(self):
        return self.name


class _Table:
    def __init__(self, topic):
        self.changelog_topic = _Topic(topic)


class _Recovery:
    def __init__(self, highwaters, offsets, active):
        self.active_highwaters, self.active_offsets, self.active_tps = highwaters, offsets, active


class _Tables(dict):
    def __init__(self, recovery):
        super().__init__({name: _Table(topic) for topic, name in TOPIC_TABLES.items()})
        self.recovery = recovery


def sample(name, table):
    return metrics.REGISTRY.get_sample_value(name, {"table": table})


def test_recovery_series_are_exported_for_every_table_from_the_start():
    for table in metrics.TABLES:
        assert sample("stream_recovery_remaining_messages", table) is not None
        assert sample("stream_recovery_restored_messages_total", table) is not None


def test_refresh_recovery_sets_the_gauge_and_never_raises():
    tp = ("app-directory-changelog", 3)
    refresh_recovery(_Tables(_Recovery({tp: 41}, {tp: 1}, {tp})))
    assert sample("stream_recovery_remaining_messages", "directory") == 40
    refresh_recovery(_Tables(_Recovery({tp: 41}, {tp: 41}, {tp})))
    assert sample("stream_recovery_remaining_messages", "directory") == 0
    refresh_recovery(object())  # no recovery at all: logged, not raised
    assert sample("stream_recovery_remaining_messages", "directory") == 0


def test_restored_messages_count_active_partitions_only():
    active, standby = ("app-users-changelog", 0), ("app-users-changelog", 1)
    recovery = _Recovery({}, {}, {active})
    before = sample("stream_recovery_restored_messages_total", "users")
    count_restored(recovery, "users", active)
    count_restored(recovery, "users", active)
    count_restored(recovery, "users", standby)
    count_restored(object(), "users", active)  # no recovery at all: logged, not raised
    assert sample("stream_recovery_restored_messages_total", "users") == before + 2
