"""Configuration from the environment (every variable is listed in the README).

Parsing is strict: a malformed value stops the process at start with the
variable's name, instead of a worker running with a silently wrong setting.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

from stream.core.activation import ActivationLimits
from stream.core.clock import TimeRules
from stream.core.errors import ConfigError
from stream.core.routing import ParkingLimits
from stream.core.segment import DecodeLimits

N = TypeVar("N", int, float)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CRITERIA = REPO_ROOT / "deploy" / "criteria.yaml"


@dataclass(frozen=True, slots=True)
class Topics:
    events: str = "product-events"
    criteria: str = "activation-criteria"
    changes: str = "activation-changes"
    dlq: str = "product-events-dlq"
    triggers: str = "lifecycle-triggers"
    alerts: str = "drift-alerts"


@dataclass(frozen=True, slots=True)
class KafkaSecurity:
    """SASL/SSL settings, only ever read from the environment and never logged."""

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None

    def confluent(self) -> dict[str, str]:
        conf = {"security.protocol": self.protocol}
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username is not None:
            conf["sasl.username"] = self.sasl_username
        if self.sasl_password is not None:
            conf["sasl.password"] = self.sasl_password
        if self.ssl_cafile:
            conf["ssl.ca.location"] = self.ssl_cafile
        return conf


@dataclass(frozen=True, slots=True)
class GroupTimeouts:
    """Consumer-group timing. Faust's defaults (60 s rebalance and session)
    make a worker take ~35 s to start and a restarted one ~2 min to get its
    partitions back; these are shorter but still safe under load."""

    session_timeout_s: float = 10.0
    heartbeat_interval_s: float = 1.0
    rebalance_timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class Settings:
    broker_url: str | None = None
    criteria_path: Path = DEFAULT_CRITERIA
    data_dir: Path = Path("data")
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    app_id: str = "activation"
    partitions: int = 4
    replication_factor: int = 1
    topics: Topics = field(default_factory=Topics)
    security: KafkaSecurity = field(default_factory=KafkaSecurity)
    decode: DecodeLimits = field(default_factory=DecodeLimits)
    limits: ActivationLimits = field(default_factory=ActivationLimits)
    parking: ParkingLimits = field(default_factory=ParkingLimits)
    group: GroupTimeouts = field(default_factory=GroupTimeouts)
    standby_replicas: int = 0
    #: Restore active table partitions by bulk-reading their changelogs into
    #: RocksDB before Faust's recovery (stream/worker/bulk_restore.py); off:
    #: Faust's own recovery only.
    bulk_restore: bool = True
    #: Messages an agent takes per batch at most, and how long it waits to fill
    #: one: larger batches amortise Faust's per-message cost, the wait bounds
    #: the latency it adds per hop.
    batch_max: int = 5_000
    batch_wait_ms: int = 100
    #: How long the broker may hold a worker's fetch when none of its
    #: partitions has new messages. Apache Kafka answers as soon as one does,
    #: so there this only sets how often an idle worker asks; a broker that
    #: always holds the fetch this long (the embedded one) adds it to every
    #: hop that has caught up. Faust's own value is 1,500 ms.
    fetch_wait_ms: int = 100
    #: Decoded accounts and users kept in memory (the tables hold the truth).
    #: An account is decoded with all its members (~13 KB of memory on
    #: average in the benchmark, 10 users per account), a user ~3.5 KB.
    cache_accounts: int = 10_000
    cache_users: int = 20_000
    #: Event time: how late a call may be, when a silent lane stops holding
    #: the watermark back, and how often a worker nudges its partitions'
    #: clocks forward when no events arrive.
    time: TimeRules = field(default_factory=TimeRules)
    tick_seconds: float = 5.0
    #: How often a worker returns the allocator's free memory to the system
    #: (stream/worker/memory.py); 0: never.
    memory_trim_seconds: float = 5.0
    #: Partitions of the input topic (its direct lanes); None: as configured.
    input_partitions: int | None = None
    log_level: str = "info"

    @property
    def bootstrap_servers(self) -> str:
        """``host:port[,host:port]`` from ``kafka://host:port;host:port`` style URLs."""
        if not self.broker_url:
            raise ConfigError("STREAM_BROKER_URL is not set (and no embedded broker was started)")
        parts = []
        for chunk in self.broker_url.replace(";", ",").split(","):
            chunk = chunk.strip()
            if "://" in chunk:
                chunk = chunk.split("://", 1)[1]
            if chunk:
                parts.append(chunk)
        return ",".join(parts)

    @property
    def faust_broker(self) -> str:
        return ";".join(f"kafka://{s}" for s in self.bootstrap_servers.split(","))

    @property
    def account_topic(self) -> str:
        return f"{self.app_id}-account-calls"

    @property
    def user_topic(self) -> str:
        return f"{self.app_id}-user-calls"

    @property
    def ingest_group(self) -> str:
        """The consumer group of the first hop's input reader
        (stream/worker/input_reader.py); the other hops are in ``app_id``'s."""
        return f"{self.app_id}-ingest"

    @property
    def lanes_topic(self) -> str:
        """Each input partition's lane history (compacted). Named as the Faust
        table that held it before the input reader did, so a deployment keeps it."""
        return f"{self.app_id}-input-lanes-changelog"

    def with_broker(self, url: str) -> Settings:
        return replace(self, broker_url=url)


def _number(env: Mapping[str, str], name: str, default: N, minimum: N) -> N:
    """An int or float variable (the type of ``default``), at least ``minimum``."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    kind = type(default)
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: must be {'an integer' if kind is int else 'a number'}") from None
    if value < minimum:
        raise ConfigError(f"{name}={raw!r}: must be at least {minimum}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    return _number(env, name, default, minimum)


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    return _number(env, name, default, 0.001)


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r}: must be true or false")


def _str(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name)
    return default if value is None or value == "" else value


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    broker = env.get("STREAM_BROKER_URL") or None
    if broker is not None:
        if "@" in broker:
            # user:password@host would be printed wherever the address is: credentials
            # come from STREAM_SASL_USERNAME / STREAM_SASL_PASSWORD only (value not echoed)
            raise ConfigError(
                "STREAM_BROKER_URL: no credentials in the address, set STREAM_SASL_USERNAME and STREAM_SASL_PASSWORD"
            )
        for chunk in broker.replace(";", ",").split(","):
            host_port = chunk.strip().split("://", 1)[-1]
            host, _, port = host_port.rpartition(":")
            if not host or not port.isdigit():
                raise ConfigError(f"STREAM_BROKER_URL={broker!r}: expected kafka://host:port[,host:port]")
    protocol = _str(env, "STREAM_SECURITY_PROTOCOL", "PLAINTEXT").upper()
    if protocol not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
        raise ConfigError(f"STREAM_SECURITY_PROTOCOL={protocol!r}: one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL")
    log_level = _str(env, "STREAM_LOG_LEVEL", "info").lower()
    if log_level not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"STREAM_LOG_LEVEL={log_level!r}: one of debug, info, warning, error")
    return Settings(
        broker_url=broker,
        criteria_path=Path(_str(env, "STREAM_CRITERIA", str(DEFAULT_CRITERIA))),
        data_dir=Path(_str(env, "STREAM_DATA_DIR", "data")),
        web_host=_str(env, "STREAM_WEB_HOST", "127.0.0.1"),
        web_port=_int(env, "STREAM_WEB_PORT", 6066),
        app_id=_str(env, "STREAM_APP_ID", "activation"),
        partitions=_int(env, "STREAM_PARTITIONS", 4),
        replication_factor=_int(env, "STREAM_REPLICATION_FACTOR", 1),
        topics=Topics(
            events=_str(env, "STREAM_TOPIC_EVENTS", "product-events"),
            criteria=_str(env, "STREAM_TOPIC_CRITERIA", "activation-criteria"),
            changes=_str(env, "STREAM_TOPIC_CHANGES", "activation-changes"),
            dlq=_str(env, "STREAM_TOPIC_DLQ", "product-events-dlq"),
            triggers=_str(env, "STREAM_TOPIC_TRIGGERS", "lifecycle-triggers"),
            alerts=_str(env, "STREAM_TOPIC_ALERTS", "drift-alerts"),
        ),
        security=KafkaSecurity(
            protocol=protocol,
            sasl_mechanism=env.get("STREAM_SASL_MECHANISM") or None,
            sasl_username=env.get("STREAM_SASL_USERNAME") or None,
            sasl_password=env.get("STREAM_SASL_PASSWORD") or None,
            ssl_cafile=env.get("STREAM_SSL_CAFILE") or None,
        ),
        decode=DecodeLimits(
            max_message_bytes=_int(env, "STREAM_MAX_MESSAGE_BYTES", 1_048_576),
            max_batch_events=_int(env, "STREAM_MAX_BATCH_EVENTS", 1_000),
        ),
        limits=ActivationLimits(
            dedupe_window_ms=_int(env, "STREAM_DEDUPE_WINDOW_HOURS", 24) * 3_600_000,
            max_users_per_account=_int(env, "STREAM_MAX_USERS_PER_ACCOUNT", 10_000),
            max_event_names_per_user=_int(env, "STREAM_MAX_EVENT_NAMES_PER_USER", 500),
        ),
        parking=ParkingLimits(
            grace_ms=_int(env, "STREAM_PARK_GRACE_HOURS", 168) * 3_600_000,
            max_parked_per_user=_int(env, "STREAM_PARK_MAX_PER_USER", 1_000),
        ),
        group=GroupTimeouts(
            session_timeout_s=_float(env, "STREAM_SESSION_TIMEOUT_SECONDS", 10.0),
            heartbeat_interval_s=_float(env, "STREAM_HEARTBEAT_INTERVAL_SECONDS", 1.0),
            rebalance_timeout_s=_float(env, "STREAM_REBALANCE_TIMEOUT_SECONDS", 10.0),
        ),
        standby_replicas=_int(env, "STREAM_STANDBY_REPLICAS", 0, minimum=0),
        bulk_restore=_bool(env, "STREAM_BULK_RESTORE", True),
        batch_max=_int(env, "STREAM_BATCH_MAX", 5_000),
        batch_wait_ms=_int(env, "STREAM_BATCH_WAIT_MS", 100),
        fetch_wait_ms=_int(env, "STREAM_FETCH_WAIT_MS", 100),
        cache_accounts=_int(env, "STREAM_CACHE_ACCOUNTS", 10_000),
        cache_users=_int(env, "STREAM_CACHE_USERS", 20_000),
        time=TimeRules(
            allowed_lateness_ms=_int(env, "STREAM_ALLOWED_LATENESS_SECONDS", 6 * 3600, minimum=0) * 1000,
            idle_ms=_int(env, "STREAM_IDLE_LANE_SECONDS", 300) * 1000,
        ),
        tick_seconds=_float(env, "STREAM_TICK_SECONDS", 5.0),
        memory_trim_seconds=_number(env, "STREAM_MEMORY_TRIM_SECONDS", 5.0, 0.0),
        log_level=log_level,
    )
