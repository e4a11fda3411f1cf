"""The dead-letter topic: every rejected record, as it was sent, with its reason.

The value is the original bytes (for a record inside a Segment batch, that
record's own JSON); the reason and the record's origin travel in headers, the
convention Kafka Connect uses, so existing DLQ tooling can read them.
"""

from __future__ import annotations

from typing import Any

import faust

from stream.core.envelope import Envelope
from stream.core.routing import lane_source
from stream.worker import metrics


class DeadLetters:
    def __init__(self, topic: faust.TopicT) -> None:
        self.topic = topic

    async def send(
        self,
        reason: str,
        detail: str,
        value: bytes,
        key: bytes | None,
        source_topic: str,
        partition: int,
        offset: int,
        index: int | None,
    ) -> Any:
        headers = {
            "dlq.reason": reason.encode(),
            "dlq.detail": detail.encode("utf-8", "replace")[:500],
            "dlq.source.topic": source_topic.encode(),
            "dlq.source.partition": str(partition).encode(),
            "dlq.source.offset": str(offset).encode(),
        }
        if index is not None:
            headers["dlq.source.batch_index"] = str(index).encode()
        metrics.counter_of(metrics.DLQ, reason).inc()
        return await self.topic.send(key=key, value=value, headers=headers, force=True)

    async def send_envelope(self, reason: str, detail: str, env: Envelope) -> Any:
        """A call rejected after re-keying: the original record when it was kept."""
        topic, partition = lane_source(env.lane)
        value = env.raw.encode() if env.raw is not None else env.to_segment()
        await self.send(
            reason,
            detail,
            value,
            env.user_id.encode(),
            topic,
            partition,
            env.offset,
            None if env.index < 0 else env.index,
        )
