"""Event-time helpers. The core never reads the wall clock: time is an int of
milliseconds since the epoch (UTC) taken from events or from an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime

MS_PER_DAY = 86_400_000
#: Events dated outside this range are rejected as ``bad_timestamp``: they are
#: almost always clients with a broken clock, and would poison event-time logic.
MIN_EVENT_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
MAX_EVENT_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z


def parse_timestamp_ms(value: object) -> int:
    """Parse an ISO-8601 string (or epoch milliseconds) into epoch milliseconds.

    A timestamp without an offset is taken as UTC, which is what Segment
    libraries mean when they omit it.
    """
    if isinstance(value, bool):
        raise ValueError("timestamp must be an ISO-8601 string")
    if isinstance(value, int | float):
        return int(value)
    if not isinstance(value, str) or not value:
        raise ValueError("timestamp must be an ISO-8601 string")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def to_iso(ms: int | None) -> str | None:
    """Format epoch milliseconds as an ISO-8601 UTC string (``...Z``)."""
    if ms is None:
        return None
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_now_ms() -> int:
    """The wall clock, for the shell only (the core takes time as an argument)."""
    return int(datetime.now(tz=UTC).timestamp() * 1000)
