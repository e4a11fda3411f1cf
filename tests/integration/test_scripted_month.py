"""Six scripted weeks through real workers: one account per drift alert kind
and a healthy one; a criteria change in the middle; the end of the stream
noticed by the wall-clock tick. A replay of the same script on fresh topics
by a fresh app must publish exactly the same records (ids included), and both
must equal the offline pipeline's alerts and triggers and its KPIs."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson
import pytest

from stream import scripted_month as sm
from stream.core.criteria import parse_criteria
from stream.core.kpis import account_kpis, finalize, kpi_partial, merge_partials
from stream.core.partitioning import partition_for
from stream.core.replay import OfflinePipeline
from stream.core.timeutil import to_iso
from tests.integration.harness import Cluster, TopicReader, metric_sum, parse_metrics, wait_until

V1 = parse_criteria(sm.CRITERIA_V1)
V2 = parse_criteria(sm.criteria_v2())
CALLS = sm.calls()
JOINS = [c for c in CALLS if c.doc["type"] != "track"]
PHASE_ONE = [c for c in sm.phase_one() if c.doc["type"] == "track"]
PHASE_TWO = [c for c in sm.phase_two() if c.doc["type"] == "track"]
CHANGE_MIDNIGHT = to_iso(int((sm.START.timestamp() + sm.CHANGE_DAY * 86400) * 1000))
FINAL_MIDNIGHT = to_iso(int(sm.FINAL_MIDNIGHT.timestamp() * 1000))


def offline() -> OfflinePipeline:
    """The same script, in the same production order and offsets, offline."""
    p = OfflinePipeline(V1, partitions=4, topic="x")
    offset = 0
    for calls in (JOINS, PHASE_ONE):
        for _key, value in sm.messages(calls):
            p.feed(value, offset=offset)
            offset += 1
    p.change_criteria(V2, 0)
    for _key, value in sm.messages(PHASE_TWO):
        p.feed(value, offset=offset)
        offset += 1
    p.finish(idle_ms=60_000)
    return p


def views(cluster: Cluster) -> dict[str, dict[str, Any]]:
    w = cluster.workers[0]
    return {a: w.get(f"/accounts/{a}").json() for a in sm.STORIES}


def wait_for(cluster: Cluster, check, what: str, timeout: float = 120.0) -> dict[str, dict[str, Any]]:
    def done():
        v = views(cluster)
        return v if all("account_id" in x and check(x) for x in v.values()) else None

    return wait_until(done, timeout, 0.5, what)


def drive(cluster: Cluster) -> None:
    """Joins first (so every account knows its members and roles before any
    track call), then phase one, the criteria change, phase two, and silence."""
    cluster.produce(sm.messages(JOINS))
    wait_for(cluster, lambda v: v["users"]["known"] == 3 and all(u["role"] for u in v["users"]["top"]), "joins")
    cluster.produce(sm.messages(PHASE_ONE))
    wait_for(cluster, lambda v: v["swept_through"] == CHANGE_MIDNIGHT, "phase one swept to the change day")
    cluster.produce([(b"criteria", orjson.dumps(sm.criteria_v2()))], topic=cluster.topics["criteria"])
    wait_for(cluster, lambda v: v["criteria_version"] == 2, "criteria v2 adopted")
    cluster.produce(sm.messages(PHASE_TWO))
    # the last call is 20 s short of the watermark reaching the final midnight:
    # only the wall-clock tick of the now silent partitions gets it there
    wait_for(cluster, lambda v: v["swept_through"] == FINAL_MIDNIGHT, "the idle tick to sweep the final midnight")


def records(cluster: Cluster, topic: str) -> list[bytes]:
    with TopicReader(cluster.bootstrap, cluster.topics[topic]) as reader:
        reader.poll()
        values = [m.value() for m in reader.poll()]
    return sorted(orjson.dumps(orjson.loads(v), option=orjson.OPT_SORT_KEYS) for v in values)


def canonical(items: list[dict[str, Any]]) -> list[bytes]:
    return sorted(orjson.dumps(i, option=orjson.OPT_SORT_KEYS) for i in items)


def same(got: list[bytes], want: list[bytes]) -> None:
    missing = sorted(set(want) - set(got))[:3]
    extra = sorted(set(got) - set(want))[:3]
    assert got == want, f"{len(got)} vs {len(want)}; missing {missing}; extra {extra}"


@pytest.fixture(scope="module")
def driven(month: Cluster, month_replay: Cluster) -> tuple[Cluster, Cluster, OfflinePipeline]:
    drive(month)
    drive(month_replay)
    return month, month_replay, offline()


def test_each_account_raises_its_story_live(driven):
    live, _, _ = driven
    alerts = [orjson.loads(r) for r in records(live, "alerts")]
    kinds: dict[str, set[str]] = defaultdict(set)
    statuses: dict[str, list[str]] = defaultdict(list)
    for a in alerts:
        kinds[a["account_id"]].add(a["kind"])
        if a["user_id"] is None:
            statuses[a["account_id"]].append(a["status"])
    assert {acct: kinds[acct] for acct in sm.STORIES} == {acct: k for acct, (k, _) in sm.STORIES.items()}
    # resolution, severity changes, and alerts that stay open
    assert sorted(statuses["stalled"]) == ["open", "resolved"]
    assert sorted(statuses["regression"]) == ["open", "resolved"]
    assert sorted(statuses["drop"]) == ["open", "resolved"]
    assert sorted(statuses["flagship"]) == ["open", "updated"]
    assert sorted(statuses["dormant"]) == ["open", "updated"]
    assert statuses["lumen"] == statuses["champion"] == statuses["shallow"] == ["open"]
    view = live.workers[1].get("/accounts/dormant").json()
    assert {a["kind"] for a in view["drift_alerts"]} == {"dormant"} and len(view["drift_alerts"]) == 4


def test_live_alerts_and_triggers_equal_the_offline_pipeline(driven):
    live, _, expected = driven
    same(records(live, "alerts"), canonical(expected.alerts))
    same(records(live, "triggers"), canonical(expected.triggers))
    kinds = {orjson.loads(t)["kind"] for t in records(live, "triggers")}
    assert {"no_first_key_action", "stuck", "inactive", "milestone_celebration", "pql"} <= kinds


def test_every_midnight_swept_is_timed(driven):
    live, _, _ = driven
    samples = [parse_metrics(w.get("/metrics").text) for w in live.workers]
    swept = sum(metric_sum(s, "stream_sweeps_total") for s in samples)
    timed = sum(metric_sum(s, "stream_sweep_duration_seconds_count") for s in samples)
    seconds = sum(metric_sum(s, "stream_sweep_duration_seconds_sum") for s in samples)
    # a partition with an account from the first day sweeps every midnight of the script
    assert swept >= sm.DAYS
    assert timed == swept
    assert seconds > 0


def test_a_replay_from_scratch_publishes_identical_topics(driven):
    live, replay, _ = driven
    for topic in ("alerts", "triggers", "changes"):
        got, again = records(live, topic), records(replay, topic)
        assert got, topic
        same(again, got)


def test_kpis_equal_an_offline_computation(driven):
    live, _, expected = driven
    partials = []
    by_partition: dict[int, list] = defaultdict(list)
    for account_id, state in expected.accounts.items():
        by_partition[partition_for(account_id, 4)].append(state)
    for partition, states in by_partition.items():
        partials.append(kpi_partial(states, V2, expected.clocks[partition].newest))
    visitors, converted = expected.visitor_counts()
    partials.append({**merge_partials([]), "visitors": visitors, "converted_visitors": converted})
    want = orjson.loads(orjson.dumps(finalize(merge_partials(partials))))
    assert want["kpis"]["visitor_signup"]["value"] == 0.5  # two of the four visitors signed up
    for worker in live.workers:  # any worker answers for all
        assert worker.get("/kpis").json() == want
    for account_id in ("healthy", "shallow", "champion"):
        state = expected.accounts[account_id]
        want_account = account_kpis(state, V2, expected.clock_for(account_id))
        assert live.workers[0].get(f"/accounts/{account_id}/kpis").json() == orjson.loads(orjson.dumps(want_account))
    assert want["kpis"]["signup_subscription"]["denominator"] == len(sm.STORIES)


def test_a_call_later_than_the_allowed_lateness_goes_to_the_dlq(driven):
    live, _, _ = driven
    user = "/accounts/healthy/users/healthy-u1"
    before = live.workers[0].get(user).json()["event_counts"]
    old = {
        "type": "track",
        "messageId": "too-late-1",
        "userId": "healthy-u1",
        "event": "Report Created",
        "timestamp": "2026-08-10T09:00:00.000Z",
        "properties": {},
        "context": {"groupId": "healthy"},
    }
    live.produce([(b"healthy", orjson.dumps(old))])
    with TopicReader(live.bootstrap, live.topics["dlq"]) as dlq:

        def late():
            for m in dlq.poll():
                headers = dict(m.headers() or [])
                if headers.get("dlq.reason") == b"late":
                    return m
            return None

        msg = wait_until(late, 60, what="the late call in the DLQ")
    assert orjson.loads(msg.value())["messageId"] == "too-late-1"
    assert live.workers[0].get(user).json()["event_counts"] == before
