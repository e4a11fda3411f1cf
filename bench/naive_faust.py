"""The naive baseline: Faust as its documentation shows it.

One agent decodes each message into a Faust ``Record`` and does one RocksDB
table ``+=`` per event (a per-key counter, keyed by the call's account, else
its user). Run by the benchmark as a worker process:

    BENCH_BROKER=kafka://127.0.0.1:9092 BENCH_TOPIC=... BENCH_PROGRESS=progress.txt \
        python -m bench.naive_faust

Every half second it writes "events-processed unix-time" to ``BENCH_PROGRESS``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import faust


class Call(faust.Record, serializer="json"):  # type: ignore[misc]
    type: str
    userId: str  # Segment's field names
    timestamp: str
    messageId: str | None = None
    event: str | None = None
    groupId: str | None = None
    context: dict | None = None  # type: ignore[type-arg]
    properties: dict | None = None  # type: ignore[type-arg]
    traits: dict | None = None  # type: ignore[type-arg]


def make_app() -> faust.App:
    env = os.environ
    app = faust.App(
        env.get("BENCH_APP", "naive"),
        broker=env["BENCH_BROKER"],
        store="rocksdb://",
        datadir=env.get("BENCH_DATA", "naive-data"),
        web_port=int(env.get("BENCH_WEB_PORT", "6099")),
        web_host="127.0.0.1",
        web_bind="127.0.0.1",
        topic_partitions=int(env.get("BENCH_PARTITIONS", "4")),
        consumer_auto_offset_reset="earliest",
        # the same quick group joins as the pipeline's benchmark workers
        broker_session_timeout=6,
        broker_heartbeat_interval=0.5,
        broker_rebalance_timeout=3,
    )
    topic = app.topic(env["BENCH_TOPIC"], key_type=str, value_type=Call)
    counts = app.Table("counts", default=int, partitions=int(env.get("BENCH_PARTITIONS", "4")))
    progress = Path(env["BENCH_PROGRESS"])
    processed = [0]

    @app.agent(topic)
    async def count(stream: faust.StreamT[Call]) -> None:
        async for call in stream:
            group = call.groupId or (call.context or {}).get("groupId")
            counts[group or call.userId] += 1
            processed[0] += 1

    @app.timer(interval=0.5)
    async def report() -> None:
        tmp = progress.with_suffix(".tmp")
        tmp.write_text(f"{processed[0]} {time.time()}\n")
        tmp.replace(progress)

    return app


def main() -> None:
    app = make_app()
    faust.Worker(app, loglevel=os.environ.get("BENCH_LOG_LEVEL", "WARNING")).execute_from_commandline()


if __name__ == "__main__":
    main()
