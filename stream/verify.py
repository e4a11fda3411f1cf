"""`stream verify`: compare a live deployment with an offline run of the same core.

Reads the input topic from the beginning to its (measured) end, runs the
pipeline in memory under the newest criteria version, and compares the
expected view of every account and user with what the workers answer over
HTTP. Any difference is listed by key. Final state does not depend on the order
calls were processed in, nor on when a criteria version was adopted (the core's
property tests check both), so the comparison is exact.

Also checked:

* events: every user's per-event counts, summed into what the live state
  lacks (lost) and what it has too many of (double-counted);
* the DLQ holds as many records per reason as the offline run rejected;
* each account's last account-level change record carries the rate the
  account has now;
* output topics: a record may repeat only with its deterministic id (repeats
  are counted, not failed); drift alerts and absence-driven lifecycle triggers
  are the same set as offline, id for id, when one criteria version was in
  force (they are decided at midnight sweeps from dated facts, so they do not
  depend on processing order). Change records and event-driven triggers
  describe each step in the order it was applied, which partitions interleave
  differently live, so only their repeats and the last change are checked.
"""

from __future__ import annotations

import asyncio
import heapq
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from stream.core.criteria import Criteria
from stream.core.replay import OfflinePipeline
from stream.core.views import account_view, user_view
from stream.kafka_admin import partition_count, read_topic
from stream.settings import Settings

#: Lifecycle triggers decided by midnight sweeps (absence of events).
SWEPT_TRIGGERS = frozenset({"no_first_key_action", "stuck", "inactive"})
#: HTTP requests in flight at once against the workers.
CONCURRENCY = 16


@dataclass
class OutputCount:
    """What one output topic holds, against the offline run where it can."""

    records: int = 0
    distinct: int = 0
    #: ids the offline run produced that the topic lacks / has that it did not
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    compared: bool = False

    @property
    def repeats(self) -> int:
        """Records published again with the same id (at-least-once delivery)."""
        return self.records - self.distinct


@dataclass
class Report:
    checked: int = 0
    differences: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    dlq_expected: Counter[str] = field(default_factory=Counter)
    dlq_found: Counter[str] = field(default_factory=Counter)
    stale_records: list[str] = field(default_factory=list)
    #: track calls the offline run counted, and how far the live counts differ
    events_expected: int = 0
    lost: int = 0
    double_counted: int = 0
    outputs: dict[str, OutputCount] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return (
            not self.differences
            and self.dlq_expected == self.dlq_found
            and not self.stale_records
            and not any(o.missing or o.unexpected for o in self.outputs.values())
        )


def expected_pipeline(settings: Settings, criteria: Criteria) -> OfflinePipeline:
    pipeline = OfflinePipeline(
        criteria,
        partitions=settings.partitions,
        topic=settings.topics.events,
        decode_limits=settings.decode,
        limits=settings.limits,
        parking=settings.parking,
        time=settings.time,
        input_partitions=partition_count(settings, settings.topics.events) or 1,
    )
    for partition, offset, broker_ts, value in _in_append_order(settings):
        pipeline.feed(value, partition=partition, offset=offset, broker_ts=broker_ts)
    pipeline.finish()  # the input is all there: every lane has gone quiet
    return pipeline


def _in_append_order(settings: Settings) -> Iterator[tuple[int, int, int | None, bytes]]:
    """The input topic's messages, partitions merged by broker timestamp (each
    in its own order), as consumers reading all partitions at once meet them.

    State does not depend on the order, but a sweep sees the accounts that
    exist when it runs, and identify and group calls are never late: an
    account whose calls all come after a midnight was swept is judged from the
    next midnight on. Reading one whole partition after another would put
    every partition's last calls before the next partition's first ones."""
    by_partition: dict[int, list[tuple[int, int, int | None, bytes]]] = {}
    for msg in read_topic(settings, settings.topics.events):
        ts_type, ts = msg.timestamp()
        broker_ts = ts if ts_type and ts > 0 else None
        part = msg.partition()
        by_partition.setdefault(part, []).append((part, msg.offset(), broker_ts, msg.value() or b""))
    return heapq.merge(*by_partition.values(), key=lambda m: (m[2] or 0, m[0], m[1]))


def expected_views(pipeline: OfflinePipeline, criteria: Criteria) -> dict[str, dict[str, Any]]:
    """HTTP path -> the view the offline run expects there."""
    views: dict[str, dict[str, Any]] = {}
    for account_id, state in sorted(pipeline.accounts.items()):
        views[f"/accounts/{quote(account_id, safe='')}"] = account_view(
            state, criteria, pipeline.clock_for(account_id), pipeline.swept_for(account_id)
        )
    for (account_id, user_id), user in sorted(pipeline.users.items()):
        path = f"/accounts/{quote(account_id, safe='')}/users/{quote(user_id, safe='')}"
        views[path] = user_view(pipeline.accounts[account_id], user, criteria, pipeline.clock_for(account_id))
    return views


def fetch_views(url: str, paths: list[str], timeout: float = 30.0) -> dict[str, Any]:
    """path -> the worker's JSON answer (or "HTTP <status>"), CONCURRENCY at a time."""

    async def run() -> dict[str, Any]:
        limit = asyncio.Semaphore(CONCURRENCY)
        out: dict[str, Any] = {}
        async with httpx.AsyncClient(base_url=url, timeout=timeout) as http:

            async def one(path: str) -> None:
                async with limit:
                    try:
                        r = await http.get(path)
                    except httpx.HTTPError as exc:
                        out[path] = f"unreachable: {exc!r}"
                        return
                    out[path] = r.json() if r.status_code == 200 else f"HTTP {r.status_code}"

            await asyncio.gather(*(one(p) for p in paths))
        return out

    return asyncio.run(run())


def _without_criteria_history(view: dict[str, Any]) -> dict[str, Any]:
    """An ``activation_regression`` alert records the rate an account had when
    a criteria change reached it: the input topic does not say where in the
    stream that was, so the recomputation cannot check it. Everything else
    depends on the events and the current criteria only."""
    if "drift_alerts" not in view:
        return view
    alerts = [a for a in view["drift_alerts"] if a.get("kind") != "activation_regression"]
    return {**view, "drift_alerts": alerts}


def compare_views(expected: dict[str, dict[str, Any]], live: dict[str, Any], report: Report) -> None:
    """Fill the report's differences and its lost / double-counted events."""
    for path, want in expected.items():
        report.checked += 1
        got = live.get(path, "not fetched")
        if isinstance(got, dict):
            got, want = _without_criteria_history(got), _without_criteria_history(want)
        if got != want:
            report.differences[path] = (want, got)
        if "event_counts" in want:
            found = got.get("event_counts", {}) if isinstance(got, dict) else {}
            for name in set(want["event_counts"]) | set(found):
                delta = found.get(name, 0) - want["event_counts"].get(name, 0)
                report.lost += max(0, -delta)
                report.double_counted += max(0, delta)
            report.events_expected += sum(want["event_counts"].values())


def count_dead_letters(settings: Settings) -> Counter[str]:
    found: Counter[str] = Counter()
    seen: set[tuple[Any, ...]] = set()
    for msg in read_topic(settings, settings.topics.dlq):
        headers = dict(msg.headers() or [])
        reason = headers.get("dlq.reason", b"?").decode()
        # the DLQ is at least once: a dead letter re-sent after a crash has the
        # same source and value, and counts once
        origin = tuple(headers.get(h) for h in ("dlq.source.topic", "dlq.source.partition", "dlq.source.offset"))
        identity = (reason, *origin, headers.get("dlq.source.batch_index"), msg.value())
        if reason not in ("bad_criteria",) and identity not in seen:
            seen.add(identity)
            found[reason] += 1
    return found


def _criteria_versions(settings: Settings) -> set[int]:
    versions = set()
    for msg in read_topic(settings, settings.topics.criteria):
        try:
            versions.add(int(orjson.loads(msg.value() or b"{}").get("version", 0)))
        except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
            continue
    return versions


def check_outputs(settings: Settings, pipeline: OfflinePipeline, report: Report) -> None:
    """Repeats on every output topic; id sets of the order-independent ones."""
    one_version = len(_criteria_versions(settings)) <= 1
    expected = {
        "drift-alerts": {a["id"] for a in pipeline.alerts if a["kind"] != "activation_regression"},
        "lifecycle-triggers": {t["id"] for t in pipeline.triggers if t["kind"] in SWEPT_TRIGGERS},
    }
    topics = {
        "activation-changes": settings.topics.changes,
        "lifecycle-triggers": settings.topics.triggers,
        "drift-alerts": settings.topics.alerts,
    }
    last_rate: dict[str, float] = {}
    for name, topic in topics.items():
        count = report.outputs[name] = OutputCount()
        ids: set[str] = set()
        comparable: set[str] = set()
        for msg in read_topic(settings, topic):
            record = orjson.loads(msg.value())
            count.records += 1
            ids.add(record["id"])
            if name == "activation-changes" and record["level"] == "account":
                last_rate[record["account_id"]] = record["new_rate"]
            if (name == "drift-alerts" and record["kind"] != "activation_regression") or (
                name == "lifecycle-triggers" and record["kind"] in SWEPT_TRIGGERS
            ):
                comparable.add(record["id"])
        count.distinct = len(ids)
        if name in expected and one_version:
            count.compared = True
            count.missing = sorted(expected[name] - comparable)
            count.unexpected = sorted(comparable - expected[name])
    for account_id, rate in sorted(last_rate.items()):
        state = pipeline.accounts.get(account_id)
        if state is not None and state.rate != rate:
            report.stale_records.append(account_id)


def verify(settings: Settings, criteria: Criteria, url: str, pipeline: OfflinePipeline | None = None) -> Report:
    """The whole comparison (pass ``pipeline`` to reuse an offline run)."""
    pipeline = pipeline or expected_pipeline(settings, criteria)
    report = Report()
    expected = expected_views(pipeline, criteria)
    compare_views(expected, fetch_views(url, list(expected)), report)
    report.dlq_expected = Counter(r.reason for r in pipeline.rejections)
    report.dlq_found = count_dead_letters(settings)
    check_outputs(settings, pipeline, report)
    return report


def print_report(report: Report, out: Any = sys.stdout) -> None:
    print(f"checked {report.checked} accounts and users over HTTP: {len(report.differences)} differ", file=out)
    for path, (expected, live) in list(report.differences.items())[:50]:
        print(f"  {path}", file=out)
        if isinstance(live, dict):
            keys = sorted(k for k in expected if expected.get(k) != live.get(k))
            for k in keys[:8]:
                print(f"    {k}: expected {expected.get(k)!r}, live {live.get(k)!r}", file=out)
        else:
            print(f"    live: {live}", file=out)
    print(
        f"track calls counted: {report.events_expected} expected, "
        f"{report.lost} lost, {report.double_counted} double-counted",
        file=out,
    )
    reasons = sorted(set(report.dlq_expected) | set(report.dlq_found))
    print("dead letters by reason (expected / found):", file=out)
    for reason in reasons:
        mark = "" if report.dlq_expected[reason] == report.dlq_found[reason] else "   <- differs"
        print(f"  {reason:18} {report.dlq_expected[reason]:8} / {report.dlq_found[reason]}{mark}", file=out)
    print("output topics (records / distinct ids / repeats / missing / unexpected):", file=out)
    for name, o in report.outputs.items():
        ids = f"{len(o.missing):8} / {len(o.unexpected)}" if o.compared else "   (order-dependent: not compared)"
        print(f"  {name:18} {o.records:8} / {o.distinct:8} / {o.repeats:6} / {ids}", file=out)
        for kind, listed in (("missing", o.missing), ("unexpected", o.unexpected)):
            if listed:
                print(f"    {kind}: {listed[:10]}", file=out)
    if report.stale_records:
        print(f"accounts whose last change record disagrees with their state: {report.stale_records[:20]}", file=out)
    print("OK: live state equals the offline run" if report.ok else "DIFFERENCES FOUND", file=out)
