"""Packed internal messages: split under the size limit, read back in order."""

from __future__ import annotations

import orjson

from stream.core.envelope import Envelope
from stream.worker.batching import PACKED_PREFIX, pack, unpack


def _envelopes(n: int) -> list[Envelope]:
    return [
        Envelope(
            "track",
            f"acct-{i % 7}",
            f"user-{i}",
            1_700_000_000_000 + i,
            "d:events:1",
            100 + i,
            -1,
            0,
            f"m{i}",
            "login",
            {"plan": "pro", "seats": i},
            {},
            1_700_000_000_000 + i,
        )
        for i in range(n)
    ]


def test_packed_messages_stay_under_the_limit_and_unpack_in_order() -> None:
    envs = _envelopes(500)
    messages = pack(envs, max_bytes=4096)
    assert len(messages) > 1
    assert all(len(m) <= 4096 and m.startswith(PACKED_PREFIX) for m in messages)
    assert [e for m in messages for e in unpack(m)] == envs


def test_an_envelope_larger_than_the_limit_travels_alone() -> None:
    big = _envelopes(1)[0]
    big.props = {"blob": "x" * 10_000}
    messages = pack([*_envelopes(2), big, *_envelopes(2)], max_bytes=4096)
    assert [len(unpack(m)) for m in messages] == [2, 1, 2]


def test_a_message_packed_by_an_earlier_version_still_unpacks() -> None:
    envs = _envelopes(3)
    earlier = PACKED_PREFIX + orjson.dumps([e.to_dict() for e in envs]) + b"}"
    assert unpack(earlier) == envs
