from __future__ import annotations

import logging

import pytest

from stream.core.errors import ConfigError
from stream.settings import load_settings


def test_defaults():
    s = load_settings({})
    assert s.broker_url is None and s.web_port == 6066 and s.partitions == 4
    assert s.topics.events == "product-events" and s.topics.dlq == "product-events-dlq"
    assert s.parking.grace_ms == 168 * 3_600_000
    assert s.security.confluent() == {"security.protocol": "PLAINTEXT"}


def test_broker_url_forms():
    s = load_settings({"STREAM_BROKER_URL": "kafka://a:9092,b:9093"})
    assert s.bootstrap_servers == "a:9092,b:9093"
    assert s.faust_broker == "kafka://a:9092;kafka://b:9093"
    assert load_settings({"STREAM_BROKER_URL": "a:1"}).bootstrap_servers == "a:1"


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"STREAM_WEB_PORT": "http"}, "STREAM_WEB_PORT"),
        ({"STREAM_PARTITIONS": "0"}, "STREAM_PARTITIONS"),
        ({"STREAM_BROKER_URL": "kafka://nohost"}, "STREAM_BROKER_URL"),
        ({"STREAM_SECURITY_PROTOCOL": "TLS"}, "STREAM_SECURITY_PROTOCOL"),
        ({"STREAM_SESSION_TIMEOUT_SECONDS": "-1"}, "STREAM_SESSION_TIMEOUT_SECONDS"),
        ({"STREAM_LOG_LEVEL": "loud"}, "STREAM_LOG_LEVEL"),
        ({"STREAM_MAX_EVENT_NAMES_PER_USER": "0"}, "STREAM_MAX_EVENT_NAMES_PER_USER"),
        ({"STREAM_MAX_USERS_PER_ACCOUNT": "many"}, "STREAM_MAX_USERS_PER_ACCOUNT"),
        ({"STREAM_BULK_RESTORE": "maybe"}, "STREAM_BULK_RESTORE"),
        ({"STREAM_FETCH_WAIT_MS": "0"}, "STREAM_FETCH_WAIT_MS"),
    ],
)
def test_malformed_values_name_the_variable(env, name):
    with pytest.raises(ConfigError, match=name):
        load_settings(env)


def test_bulk_restore_is_on_unless_turned_off():
    assert load_settings({}).bulk_restore is True
    for off in ("false", "0", "No", "OFF"):
        assert load_settings({"STREAM_BULK_RESTORE": off}).bulk_restore is False
    assert load_settings({"STREAM_BULK_RESTORE": "true"}).bulk_restore is True


def test_fetch_wait_is_short_unless_configured():
    assert load_settings({}).fetch_wait_ms == 100
    assert load_settings({"STREAM_FETCH_WAIT_MS": "500"}).fetch_wait_ms == 500


def test_sasl_password_is_not_in_repr():
    s = load_settings(
        {
            "STREAM_SECURITY_PROTOCOL": "SASL_SSL",
            "STREAM_SASL_MECHANISM": "SCRAM-SHA-512",
            "STREAM_SASL_USERNAME": "svc",
            "STREAM_SASL_PASSWORD": "hunter2",
        }
    )
    assert "hunter2" not in repr(s)
    assert s.security.confluent()["sasl.password"] == "hunter2"


def test_limits_are_configurable():
    defaults = load_settings({})
    assert (defaults.decode.max_message_bytes, defaults.decode.max_batch_events) == (1_048_576, 1_000)
    assert (defaults.limits.max_users_per_account, defaults.limits.max_event_names_per_user) == (10_000, 500)
    s = load_settings(
        {
            "STREAM_MAX_MESSAGE_BYTES": "2048",
            "STREAM_MAX_BATCH_EVENTS": "10",
            "STREAM_MAX_USERS_PER_ACCOUNT": "20",
            "STREAM_MAX_EVENT_NAMES_PER_USER": "30",
        }
    )
    assert (s.decode.max_message_bytes, s.decode.max_batch_events) == (2048, 10)
    assert (s.limits.max_users_per_account, s.limits.max_event_names_per_user) == (20, 30)


SECRET = "s3cr3t-Pa55w0rd"
SASL = {
    "STREAM_BROKER_URL": "kafka://kafka-1:9093",
    "STREAM_SECURITY_PROTOCOL": "SASL_SSL",
    "STREAM_SASL_MECHANISM": "SCRAM-SHA-512",
    "STREAM_SASL_USERNAME": "svc-stream",
    "STREAM_SASL_PASSWORD": SECRET,
}


def test_sasl_password_is_in_no_text_form_of_the_settings():
    s = load_settings(SASL)
    for text in (repr(s), str(s), repr(s.security), str(s.security), f"{s}", f"{s!r}"):
        assert SECRET not in text
        assert "svc-stream" in text  # the rest is shown
    assert s.security.confluent()["sasl.password"] == SECRET  # handed to the Kafka client only


def test_worker_start_logs_no_secret(monkeypatch, caplog, tmp_path):
    """What a worker logs and builds before its Faust loop: criteria, topics,
    the Faust app and its credentials."""
    from dataclasses import replace

    from stream.worker import run
    from stream.worker.faust_app import faust_credentials, make_app

    monkeypatch.setattr(run, "ensure_topics", lambda settings: None)
    monkeypatch.setattr(run, "published_criteria", lambda settings: None)
    monkeypatch.setattr(run, "publish_criteria", lambda settings, criteria: None)
    caplog.set_level(logging.DEBUG)
    settings = replace(load_settings(SASL), data_dir=tmp_path)
    run.prepare(settings)
    credentials = faust_credentials(settings)
    assert credentials.password == SECRET  # the client gets it ...
    app = make_app(settings)
    assert SECRET not in repr(credentials) and SECRET not in repr(app.conf.broker_credentials)
    assert "published criteria" in caplog.text
    assert SECRET not in caplog.text  # ... the log does not


def test_credentials_in_the_broker_address_are_refused_without_echo():
    with pytest.raises(ConfigError) as exc:
        load_settings({"STREAM_BROKER_URL": f"kafka://svc:{SECRET}@kafka-1:9093"})
    assert "STREAM_BROKER_URL" in str(exc.value) and "STREAM_SASL_PASSWORD" in str(exc.value)
    assert SECRET not in str(exc.value)
