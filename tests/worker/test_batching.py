"""Packed internal messages: split under the size limit, read back in order."""

from __future__ import annotations

import orjson

from stream.core.envelope import Envelope
from stream.worker.batching import PACKED_PREFIX, byte_bounded, pack, unpack


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


class _Sized:
    def __init__(self, n: int) -> None:
        self.value = b"x" * n


def test_byte_bounded_batches_cover_the_take_in_order_under_the_limit() -> None:
    sizes = [3, 4, 2, 10, 1, 1, 5]
    ranges = byte_bounded([_Sized(n) for n in sizes], 7)  # type: ignore[arg-type]
    assert ranges == [(0, 2), (2, 3), (3, 4), (4, 7)]  # 10 alone: larger than the limit, still one batch
    assert [i for start, end in ranges for i in range(start, end)] == list(range(len(sizes)))
    assert byte_bounded([], 7) == []
    assert byte_bounded([_Sized(1)] * 4, 4 * 2**20) == [(0, 4)]  # type: ignore[arg-type]
