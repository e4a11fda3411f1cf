"""The internal record that carries one decoded call to the account that owns it.

Producers key input by account or by user, and a track call may name no account
at all, so the worker re-keys: every call is wrapped in an :class:`Envelope`
keyed by account id and sent to the account-keyed internal topic. The envelope
carries its origin (``lane``, ``offset``, ``index``) so the account can skip
anything it has already applied, whichever hop re-sent it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

#: Envelope kinds. ``traits`` is a user's identify traits replayed by the
#: user directory when it learns the user's membership of an account.
KINDS = ("track", "identify", "group", "traits", "visit", "link")


@dataclass(slots=True)
class Envelope:
    kind: str
    account_id: str
    user_id: str
    ts: int
    lane: str
    offset: int
    index: int = -1
    #: Position after (offset, index) for calls the directory releases at that
    #: point of the lane (parked calls); 0 for every other call.
    sub: int = 0
    message_id: str | None = None
    event: str | None = None
    props: dict[str, Any] = field(default_factory=dict)
    traits: dict[str, Any] = field(default_factory=dict)
    #: The highest event time of the input partition up to and including this
    #: call: lateness is judged against it, so it does not depend on which
    #: account partition or batch the call lands in.
    lm: int = 0
    #: The original record's JSON, only on calls that may still be rejected
    #: downstream (a track naming no account), so the DLQ gets what was sent.
    raw: str | None = None

    @property
    def position(self) -> tuple[int, int, int]:
        """Where the call stands in its lane; a lane is applied in this order."""
        return (self.offset, self.index, self.sub)

    @property
    def cause(self) -> str:
        """What makes output ids deterministic: the messageId, else the origin."""
        return self.message_id or f"{self.lane}@{self.offset}.{self.index}.{self.sub}"

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.to_dict())

    def to_segment(self) -> bytes:
        """The call in Segment form, as the processor understood it (scalar
        properties, used traits): what a dead letter carries when the original
        bytes were not kept along the way."""
        from stream.core.timeutil import to_iso

        doc: dict[str, Any] = {"type": self.kind if self.kind in ("track", "identify", "group") else "identify"}
        if self.message_id is not None:
            doc["messageId"] = self.message_id
        doc["userId"] = self.user_id
        if self.kind == "track":
            doc["event"] = self.event
            doc["properties"] = self.props
        elif self.traits:
            doc["traits"] = self.traits
        doc["timestamp"] = to_iso(self.ts)
        if self.account_id:
            doc["context"] = {"groupId": self.account_id}
        return orjson.dumps(doc)

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.kind,
            "a": self.account_id,
            "u": self.user_id,
            "ts": self.ts,
            "ln": self.lane,
            "o": self.offset,
            "i": self.index,
            "s": self.sub,
            "m": self.message_id,
            "e": self.event,
            "p": self.props,
            "t": self.traits,
            "r": self.raw,
            "lm": self.lm,
        }

    def to_row(self) -> tuple[Any, ...]:
        """The compact wire form: the fields in declaration order, no names.

        Internal topics carry many envelopes per call; without the names a
        packed message is ~30% smaller and decodes without a lookup per field.
        """
        return (
            self.kind,
            self.account_id,
            self.user_id,
            self.ts,
            self.lane,
            self.offset,
            self.index,
            self.sub,
            self.message_id,
            self.event,
            self.props,
            self.traits,
            self.lm,
            self.raw,
        )

    @classmethod
    def from_wire(cls, item: list[Any] | dict[str, Any]) -> Envelope:
        """An envelope from either wire form: a row (:meth:`to_row`), or the
        named form (:meth:`to_dict`) that earlier versions sent."""
        if isinstance(item, list):
            return cls(*item)
        return cls.from_dict(item)

    @classmethod
    def from_bytes(cls, raw: bytes) -> Envelope:
        return cls.from_dict(orjson.loads(raw))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Envelope:
        return cls(
            kind=d["k"],
            account_id=d["a"],
            user_id=d["u"],
            ts=d["ts"],
            lane=d["ln"],
            offset=d["o"],
            index=d["i"],
            sub=d.get("s", 0),
            message_id=d["m"],
            event=d["e"],
            props=d["p"],
            traits=d["t"],
            raw=d.get("r"),
            lm=d.get("lm", 0),
        )
