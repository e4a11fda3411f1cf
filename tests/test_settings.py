from __future__ import annotations

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
    ],
)
def test_malformed_values_name_the_variable(env, name):
    with pytest.raises(ConfigError, match=name):
        load_settings(env)


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
