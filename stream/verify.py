"""`stream verify`: compare a live deployment with an offline run of the same core.

Reads the input topic from the beginning to its (measured) end, runs the
pipeline in memory under the newest criteria version, and compares the
expected view of every account and user with what the workers answer over
HTTP. Any difference is listed by key. Final state does not depend on the order
calls were processed in, nor on when a criteria version was adopted (the core's
property tests check both), so the comparison is exact.

Also checked: the DLQ holds as many records per reason as the offline run
rejected, and each account's last account-level change record carries the rate
the account has now.
"""

from __future__ import annotations

import sys
from collections import Counter
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


@dataclass
class Report:
    checked: int = 0
    differences: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    dlq_expected: Counter[str] = field(default_factory=Counter)
    dlq_found: Counter[str] = field(default_factory=Counter)
    stale_records: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences and self.dlq_expected == self.dlq_found and not self.stale_records


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
    for msg in read_topic(settings, settings.topics.events):
        ts_type, ts = msg.timestamp()
        pipeline.feed(
            msg.value() or b"",
            partition=msg.partition(),
            offset=msg.offset(),
            broker_ts=ts if ts_type and ts > 0 else None,
        )
    pipeline.finish()  # the input is all there: every lane has gone quiet
    return pipeline


def _without_criteria_history(view: dict[str, Any]) -> dict[str, Any]:
    """An ``activation_regression`` alert records the rate an account had when
    a criteria change reached it: the input topic does not say where in the
    stream that was, so the recomputation cannot check it. Everything else
    depends on the events and the current criteria only."""
    if "drift_alerts" not in view:
        return view
    alerts = [a for a in view["drift_alerts"] if a.get("kind") != "activation_regression"]
    return {**view, "drift_alerts": alerts}


def verify(settings: Settings, criteria: Criteria, url: str) -> Report:
    pipeline = expected_pipeline(settings, criteria)
    report = Report()
    with httpx.Client(base_url=url, timeout=30) as http:

        def compare(path: str, expected: dict[str, Any]) -> None:
            report.checked += 1
            r = http.get(path)
            live = r.json() if r.status_code == 200 else f"HTTP {r.status_code}"
            if isinstance(live, dict):
                live, expected = _without_criteria_history(live), _without_criteria_history(expected)
            if live != expected:
                report.differences[path] = (expected, live)

        for account_id, state in sorted(pipeline.accounts.items()):
            now = pipeline.clock_for(account_id)
            compare(f"/accounts/{quote(account_id, safe='')}", account_view(state, criteria, now))
        for (account_id, user_id), user in sorted(pipeline.users.items()):
            path = f"/accounts/{quote(account_id, safe='')}/users/{quote(user_id, safe='')}"
            compare(path, user_view(pipeline.accounts[account_id], user, criteria, pipeline.clock_for(account_id)))
    report.dlq_expected = Counter(r.reason for r in pipeline.rejections)
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
            report.dlq_found[reason] += 1
    last_rate: dict[str, float] = {}
    for msg in read_topic(settings, settings.topics.changes):
        record = orjson.loads(msg.value())
        if record["level"] == "account":
            last_rate[record["account_id"]] = record["new_rate"]
    for account_id, rate in sorted(last_rate.items()):
        state = pipeline.accounts.get(account_id)
        if state is not None and state.rate != rate:
            report.stale_records.append(account_id)
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
    reasons = sorted(set(report.dlq_expected) | set(report.dlq_found))
    print("dead letters by reason (expected / found):", file=out)
    for reason in reasons:
        mark = "" if report.dlq_expected[reason] == report.dlq_found[reason] else "   <- differs"
        print(f"  {reason:18} {report.dlq_expected[reason]:8} / {report.dlq_found[reason]}{mark}", file=out)
    if report.stale_records:
        print(f"accounts whose last change record disagrees with their state: {report.stale_records[:20]}", file=out)
    print("OK: live state equals the offline run" if report.ok else "DIFFERENCES FOUND", file=out)
