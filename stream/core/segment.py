"""Decoding Segment-spec messages (track, identify, group, batch envelopes).

The decoder never raises on input: every message becomes a list of
:class:`Event` (good records) and :class:`Rejection` (bad records with a stable
reason code), so a batch that mixes good and bad records still applies the good
ones and a worker can never be stopped by what producers send.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastjsonschema
import orjson

from stream.core.timeutil import MAX_EVENT_MS, MIN_EVENT_MS, MS_PER_DAY, parse_timestamp_ms

#: DLQ reason codes (stable: they are metric label values and DLQ headers).
REASONS = (
    "too_large",
    "not_utf8",
    "not_json",
    "not_object",
    "batch_too_large",
    "unsupported_type",
    "schema_violation",
    "missing_id",
    "bad_timestamp",
    "no_account",
    "late",
    "limit_exceeded",
)

SUPPORTED_TYPES = ("track", "identify", "group", "page", "screen")
#: Ids (userId, groupId, messageId, anonymousId): what the schemas' ``id`` accepts.
MAX_ID_LENGTH = 256
MAX_SCALAR_PROPERTIES = 32
MAX_SCALAR_LENGTH = 64


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    max_message_bytes: int = 1_048_576
    max_batch_events: int = 1_000
    #: How far ahead of the broker's timestamp an event may be dated.
    max_future_ms: int = MS_PER_DAY


@dataclass(slots=True)
class Event:
    """A validated Segment call, reduced to what the processor uses."""

    type: str
    user_id: str
    account_id: str | None
    message_id: str | None
    timestamp_ms: int
    event: str | None = None
    #: Scalar properties only (strings of at most 64 characters, numbers, booleans):
    #: what ``where`` filters can match and what is retained for re-evaluation.
    properties: dict[str, Any] = field(default_factory=dict)
    traits: dict[str, Any] = field(default_factory=dict)
    index: int | None = None
    #: Segment's anonymousId: a visitor (no userId) or a visitor signing up.
    anonymous_id: str | None = None
    #: The record's own JSON, kept only while the event may still be rejected
    #: downstream (no resolvable account), so the DLQ gets what was sent.
    raw: bytes | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: str
    detail: str
    raw: bytes
    index: int | None = None


Decoded = Event | Rejection


def schemas_dir() -> Path:
    """Where the JSON Schemas live: beside the package when installed from a
    wheel, else the repository's top-level ``schemas/``. Found from the
    ``stream`` package: a compiled module's ``__file__`` is not where it lies."""
    spec = importlib.util.find_spec("stream")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the stream package has no location to find schemas/ beside")
    package = Path(spec.origin).resolve().parent
    for candidate in (package / "schemas", package.parent / "schemas"):
        if (candidate / "segment-track.schema.json").is_file():
            return candidate
    raise FileNotFoundError("schemas/ directory not found beside the stream package")


def _compile(name: str) -> Callable[[Any], Any]:
    schema = json.loads((schemas_dir() / name).read_text())
    validator: Callable[[Any], Any] = fastjsonschema.compile(schema)
    return validator


_VALIDATORS: dict[str, Callable[[Any], Any]] = {}


def _validator(kind: str) -> Callable[[Any], Any]:
    v = _VALIDATORS.get(kind)
    if v is None:
        v = _VALIDATORS[kind] = _compile(f"segment-{'page' if kind == 'screen' else kind}.schema.json")
    return v


def decode_message(
    value: bytes | None, *, broker_timestamp_ms: int | None = None, limits: DecodeLimits | None = None
) -> list[Decoded]:
    """Decode one Kafka message value into events and rejections."""
    limits = limits or DecodeLimits()
    raw = value or b""
    if len(raw) > limits.max_message_bytes:
        return [Rejection("too_large", f"{len(raw)} bytes > {limits.max_message_bytes}", raw)]
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return [Rejection("not_utf8", "value is not valid UTF-8", raw)]
        return [Rejection("not_json", _short(str(exc)), raw)]
    if not isinstance(doc, dict):
        return [Rejection("not_object", f"JSON {type(doc).__name__}, expected an object", raw)]
    if "batch" in doc and "type" not in doc:
        items = doc["batch"]
        if not isinstance(items, list):
            return [Rejection("schema_violation", "batch must be an array", raw)]
        if len(items) > limits.max_batch_events:
            return [Rejection("batch_too_large", f"{len(items)} items > {limits.max_batch_events}", raw)]
        out: list[Decoded] = []
        for i, item in enumerate(items):
            try:
                item_raw = orjson.dumps(item)
            except orjson.JSONEncodeError:  # nested deeper than orjson writes (it reads deeper)
                item_raw = _dumps_deep(item)
            out.append(_decode_call(item, item_raw, i, broker_timestamp_ms, limits))
        return out
    return [_decode_call(doc, raw, None, broker_timestamp_ms, limits)]


def _dumps_deep(value: Any) -> bytes:
    """JSON of a decoded value at any depth (orjson writes 254 levels and reads
    1024), without recursion: a batch item's DLQ value is its own JSON."""
    out: list[bytes] = []
    stack: list[Any] = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, bytes):  # a token (decoded JSON holds no bytes)
            out.append(v)
        elif isinstance(v, list):
            stack.append(b"]")
            for i in range(len(v) - 1, -1, -1):
                stack.append(v[i])
                if i:
                    stack.append(b",")
            stack.append(b"[")
        elif isinstance(v, dict):
            stack.append(b"}")
            pairs = list(v.items())
            for i in range(len(pairs) - 1, -1, -1):
                stack.append(pairs[i][1])
                stack.append(orjson.dumps(pairs[i][0]) + b":")
                if i:
                    stack.append(b",")
            stack.append(b"{")
        else:
            out.append(orjson.dumps(v))
    return b"".join(out)


def _decode_call(doc: Any, raw: bytes, index: int | None, broker_ts: int | None, limits: DecodeLimits) -> Decoded:
    if not isinstance(doc, dict):
        return Rejection("not_object", "batch item is not an object", raw, index)
    kind = doc.get("type")
    if kind not in SUPPORTED_TYPES:
        shown = kind if isinstance(kind, str) and len(kind) <= 32 and kind.isprintable() else "?"
        return Rejection("unsupported_type", f"type {shown!r} (supported: {', '.join(SUPPORTED_TYPES)})", raw, index)
    anonymous = doc.get("anonymousId") if isinstance(doc.get("anonymousId"), str) else None
    if not doc.get("userId") and not (anonymous and kind in ("track", "page", "screen")):
        return Rejection("missing_id", "userId is required (track, page and screen: or anonymousId)", raw, index)
    if kind == "track" and not doc.get("messageId"):
        return Rejection("missing_id", "messageId is required on track calls", raw, index)
    if kind == "group" and not doc.get("groupId"):
        return Rejection("missing_id", "groupId is required on group calls", raw, index)
    try:
        _validator(kind)(doc)
    except fastjsonschema.JsonSchemaException as exc:
        return Rejection("schema_violation", _short(str(exc)), raw, index)
    try:
        ts = _event_time(doc, broker_ts)
    except ValueError as exc:
        return Rejection("bad_timestamp", _short(str(exc)), raw, index)
    if not MIN_EVENT_MS <= ts < MAX_EVENT_MS:
        return Rejection("bad_timestamp", "timestamp outside 2000-01-01..2100-01-01", raw, index)
    if broker_ts is not None and ts > broker_ts + limits.max_future_ms:
        return Rejection("bad_timestamp", "timestamp is more than a day ahead of the broker's", raw, index)

    context = doc.get("context") or {}
    if kind == "group":
        account = doc.get("groupId")
    elif kind in ("page", "screen"):
        account = None  # a view counts for the visitor-to-signup KPI only, whatever account it names
    else:  # both places are typed by the track and identify schemas
        account = context.get("groupId") or doc.get("groupId")
    event = Event(
        type=kind,
        user_id=doc.get("userId") or "",
        account_id=account,
        message_id=doc.get("messageId"),
        timestamp_ms=ts,
        index=index,
        anonymous_id=anonymous or None,
    )
    if kind in ("page", "screen"):
        return event
    if kind == "track":
        event.event = doc["event"]
        event.properties = scalar_properties(doc.get("properties"))
        if account is None:
            event.raw = raw
    else:
        traits = doc.get("traits") or {}
        try:
            event.traits = _used_traits(kind, traits)
        except ValueError as exc:
            return Rejection("schema_violation", _short(str(exc)), raw, index)
    return event


def _event_time(doc: dict[str, Any], broker_ts: int | None) -> int:
    """Segment's precedence: timestamp, then originalTimestamp, then receivedAt,
    then the broker's record timestamp."""
    for key in ("timestamp", "originalTimestamp", "receivedAt"):
        if doc.get(key) is not None:
            try:
                return parse_timestamp_ms(doc[key])
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from None
    if broker_ts is not None and broker_ts > 0:
        return broker_ts
    raise ValueError("no timestamp and no broker timestamp")


def _used_traits(kind: str, traits: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if traits.get("createdAt") is not None:
        try:
            out["created_at"] = parse_timestamp_ms(traits["createdAt"])
        except ValueError as exc:
            raise ValueError(f"traits.createdAt: {exc}") from None
        if not MIN_EVENT_MS <= out["created_at"] < MAX_EVENT_MS:
            # a base time views and KPIs could not even print (year 0 or 10000)
            raise ValueError("traits.createdAt: outside 2000-01-01..2100-01-01")
    if kind == "identify":
        if isinstance(traits.get("role"), str):
            out["role"] = traits["role"].strip().lower()
    else:
        for key in ("plan", "seats", "name"):
            if traits.get(key) is not None:
                out[key] = traits[key]
    return out


def scalar_properties(props: Any) -> dict[str, Any]:
    """Keep the properties a ``where`` filter can match: bounded in count and size
    so that state and internal messages stay small whatever producers send."""
    if not isinstance(props, dict):
        return {}
    out: dict[str, Any] = {}
    for k, v in props.items():
        if len(out) >= MAX_SCALAR_PROPERTIES:
            break
        short_scalar = isinstance(v, bool | int | float) or (isinstance(v, str) and len(v) <= MAX_SCALAR_LENGTH)
        if short_scalar and len(k) <= MAX_SCALAR_LENGTH:
            out[k] = v
    return out


#: The surrogate range, as chr(): mypyc cannot compile lone surrogates as literals.
_SURROGATE_FIRST, _SURROGATE_LAST = chr(0xD800), chr(0xDFFF)


def valid_id(value: str) -> bool:
    """An id the schemas accept: 1 to 256 characters, no C0 control character
    (the HTTP API answers for every id the decoder lets through, and only those)."""
    return 0 < len(value) <= MAX_ID_LENGTH and not any(
        ch < " " or _SURROGATE_FIRST <= ch <= _SURROGATE_LAST for ch in value
    )


def _short(text: str, limit: int = 200) -> str:
    """Error details go into DLQ headers and logs: keep them short and printable."""
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
