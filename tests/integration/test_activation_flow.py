"""The seed scenario, bad input and HTTP, on the embedded broker with two real workers."""

from __future__ import annotations

import json
from urllib.parse import quote

import fastjsonschema
import orjson

from stream.core.segment import schemas_dir
from tests.core.helpers import group, identify, track
from tests.integration.harness import MAX_MESSAGE_BYTES, PARK_MAX, Cluster, TopicReader, wait_until

CHANGE_SCHEMA = fastjsonschema.compile(json.loads((schemas_dir() / "activation-change.schema.json").read_text()))


def keyed(value: bytes) -> tuple[bytes, bytes]:
    """Key as producers do: by account when the call names one, else by user."""
    doc = orjson.loads(value)
    key = doc.get("groupId") or (doc.get("context") or {}).get("groupId") or doc["userId"]
    return key.encode(), value


def seed_messages(account: str) -> list[tuple[bytes, bytes]]:
    a = account
    msgs = [group(f"{a}-u{i}", a, i, plan="trial", createdAt="2026-09-30T00:00:00Z") for i in range(5)]
    msgs += [identify(f"{a}-u0", 10, role="executive"), identify(f"{a}-u1", 10, role="manager")]
    for i in range(3):
        msgs.append(track(f"{a}-c{i}", f"{a}-u{i}", a, "Data Source Connected", 100 + i))
        msgs.append(track(f"{a}-r{i}", f"{a}-u{i}", a, "Report Created", 200 + i))
    msgs.append(track(f"{a}-s0", f"{a}-u0", a, "Report Shared", 300, channel="email"))
    msgs.append(track(f"{a}-s1", f"{a}-u1", None, "Report Shared", 301, channel="email"))
    msgs.append(track(f"{a}-s2", f"{a}-u2", a, "Report Shared", 302, channel="slack"))
    msgs += [track(f"{a}-t{i}", f"{a}-u0", a, "Teammate Invited", 400 + i) for i in range(3)]
    msgs.append(track(f"{a}-ai", f"{a}-u3", a, "AI Edit Applied", 500))
    return [keyed(m) for m in msgs]


def test_seed_scenario_end_to_end(main: Cluster):
    with TopicReader(main.bootstrap, main.topics["changes"]) as changes:
        _seed_scenario(main, changes)


def _seed_scenario(main: Cluster, changes: TopicReader) -> None:
    main.produce(seed_messages("seed-acme"))
    worker = main.workers[0]

    def activated():
        r = worker.get("/accounts/seed-acme")
        return r.status_code == 200 and r.json()["activated"] and r.json()

    state = wait_until(activated, 90, what="seed-acme to activate")
    assert state["activation_rate"] == 1.0
    assert state["milestones"]["missing"] == []
    assert set(state["milestones"]["reached"]) == {
        "team_invited",
        "team_reporting",
        "wide_sharing",
        "exec_sees_value",
        "ai_editing",
    }
    assert state["time_to_activate_seconds"] == (24 * 60 + 500) * 60
    assert state["users"]["known"] == 5 and state["traits"]["plan"] == "trial"

    def account_activated_record():
        return [
            r
            for r in changes.values()
            if r["account_id"] == "seed-acme" and r["kind"] == "activated" and r["level"] == "account"
        ]

    (record,) = wait_until(account_activated_record, 30, what="the account's activated record")
    assert record["reason"] == "event" and record["criteria_version"] == 3 and record["old_rate"] == 0.8
    mine = [r for r in changes.values() if r["account_id"] == "seed-acme"]
    for r in mine:
        CHANGE_SCHEMA(r)
    assert len({r["id"] for r in mine}) == len(mine)
    reached = {(r["level"], r["user_id"], r["milestone"]) for r in mine if r["kind"] == "milestone_reached"}
    assert ("account", None, "team_reporting") in reached
    assert ("user", "seed-acme-u1", "report_shared") in reached  # its account came from the group call
    assert ("user", "seed-acme-u2", "report_shared") not in reached  # shared on slack
    changes.close()

    with TopicReader(main.bootstrap, main.topics["triggers"]) as triggers_topic:

        def seed_triggers():
            got = [t for t in triggers_topic.values() if t["account_id"] == "seed-acme"]
            return any(t["kind"] == "pql" for t in got) and got

        triggers = wait_until(seed_triggers, 30, what="the trial account's pql trigger")
    (pql,) = [t for t in triggers if t["kind"] == "pql"]
    assert pql["plan"] == "trial" and pql["activation_rate"] == 1.0
    celebrated = {
        (t["user_id"], t["milestone"]): t["next_milestone"] for t in triggers if t["kind"] == "milestone_celebration"
    }
    assert celebrated[("seed-acme-u2", "report_created")] == "report_shared"
    assert celebrated[("seed-acme-u0", "report_shared")] is None

    user = worker.get("/accounts/seed-acme/users/seed-acme-u0").json()
    assert user["activated"] and user["role"] == "executive"
    assert user["event_counts"] == {
        "Data Source Connected": 1,
        "Report Created": 1,
        "Report Shared": 1,
        "Teammate Invited": 3,
    }


def test_http_routes_to_the_owner_and_validates(main: Cluster):
    main.produce([keyed(group(f"route-{i}-u", f"route-{i}", 1)) for i in range(12)])
    for w in main.workers:
        for i in range(12):
            r = wait_until(
                lambda w=w, i=i: (x := w.get(f"/accounts/route-{i}")).status_code == 200 and x,
                60,
                what=f"route-{i} via {w.url}",
            )
            assert r.json()["users"]["known"] == 1
    w = main.workers[0]
    assert w.get("/accounts/no-such-account").status_code == 404
    assert w.get("/accounts/route-1/users/nobody").status_code == 404
    bad = w.get("/accounts/" + quote("bad\x01id"))
    assert bad.status_code == 400 and "bad" not in bad.text
    assert w.get("/accounts/" + "x" * 300).status_code == 400
    assert w.get("/health").json()["status"] == "ready"
    assert "stream_events_total" in w.get("/metrics").text


BAD = {
    "not_json": b"{nope",
    "not_utf8": b'{"type":"track","userId":"\xff"}',
    "not_object": b"[1]",
    "unsupported_type": b'{"type":"alias","userId":"u"}',
    "schema_violation": b'{"type":"track","event":"E","userId":"u","messageId":"m","properties":"x"}',
    "missing_id": b'{"type":"track","event":"E","messageId":"m"}',
    "bad_timestamp": b'{"type":"track","event":"E","userId":"u","messageId":"m","timestamp":"1999-01-01T00:00:00Z"}',
    "too_large": b'{"type":"track","pad":"' + b"x" * (MAX_MESSAGE_BYTES + 1) + b'"}',
    "batch_too_large": orjson.dumps({"batch": [{"type": "identify", "userId": "u"}] * 1001}),
}


def test_bad_input_goes_to_the_dlq_and_processing_continues(main: Cluster):
    mixed = orjson.dumps(
        {
            "batch": [
                orjson.loads(track("dlq-good", "dlq-u", "dlq-acct", "Report Created", 5)),
                {"type": "track", "userId": "dlq-u"},
            ]
        }
    )
    with TopicReader(main.bootstrap, main.topics["dlq"]) as dlq:
        main.produce([(b"k", v) for v in BAD.values()] + [(b"dlq-acct", mixed)])

        def everything_rejected():
            got = {(dict(m.headers())["dlq.reason"].decode(), m.value()): m for m in dlq.poll()}
            return len(got) >= len(BAD) + 1 and got

        got = wait_until(everything_rejected, 60, what="a DLQ record for every bad input")
    for reason, value in BAD.items():
        msg = got[(reason, value)]
        headers = dict(msg.headers())
        assert headers["dlq.source.topic"].decode() == main.topics["events"]
        assert int(headers["dlq.source.offset"]) >= 0 and int(headers["dlq.source.partition"]) in range(4)
        assert headers["dlq.detail"]
    (batch_reject,) = [m for (reason, _v), m in got.items() if dict(m.headers()).get("dlq.source.batch_index")]
    assert orjson.loads(batch_reject.value()) == {"type": "track", "userId": "dlq-u"}
    assert dict(batch_reject.headers())["dlq.source.batch_index"] == b"1"
    # the good record of the mixed batch was applied: the worker kept going
    user = wait_until(
        lambda: (r := main.workers[1].get("/accounts/dlq-acct/users/dlq-u")).status_code == 200 and r,
        60,
        what="the good record of the mixed batch",
    )
    assert user.json()["milestones"]["reached"].keys() == {"report_created"}
    metrics = main.workers[0].get("/metrics").text + main.workers[1].get("/metrics").text
    assert 'stream_dlq_records_total{reason="not_utf8"}' in metrics
    for w in main.workers:
        assert w.process is not None and w.process.poll() is None


def test_calls_naming_no_account_wait_for_the_group_call_then_give_up(main: Cluster):
    with TopicReader(main.bootstrap, main.topics["dlq"]) as dlq:
        # a user with no group call yet: calls are parked, not rejected ...
        parked = [track(f"park-{i}", "park-u", None, "Report Created", i) for i in range(PARK_MAX + 2)]
        main.produce([(b"park-u", v) for v in parked])

        def dropped_oldest():
            return [m for m in dlq.poll() if dict(m.headers())["dlq.reason"] == b"no_account"]

        # ... up to the cap: the two oldest give up, with their original bytes
        rejected = wait_until(lambda: len(dropped_oldest()) >= 2 and dropped_oldest(), 60, what="no_account")
        assert sorted(m.value() for m in rejected) == sorted(parked[:2])
        main.produce([(b"park-acct", group("park-u", "park-acct", 100))])
        user = wait_until(
            lambda: (
                (r := main.workers[0].get("/accounts/park-acct/users/park-u")).status_code == 200
                and r.json()["event_counts"].get("Report Created") == PARK_MAX
                and r
            ),
            60,
            what="parked calls applied once the group call arrived",
        )
        assert user.json()["milestones"]["reached"].keys() == {"report_created"}
        assert len(dropped_oldest()) == 2


def test_unexpected_internal_garbage_is_dead_lettered_not_fatal(main: Cluster):
    """Even a malformed internal message (only a bug could write one) costs that message, not the worker."""
    garbage = b'{"calls":[{"k":"track"}]}'
    with TopicReader(main.bootstrap, main.topics["dlq"]) as dlq:
        main.produce([(None, garbage)], topic=f"{main.app_id}-account-calls")

        def processing_errors():
            return [m for m in dlq.poll() if dict(m.headers())["dlq.reason"] == b"processing_error"]

        (msg,) = wait_until(processing_errors, 60, what="the garbage in the DLQ")
    assert msg.value() == garbage
    assert dict(msg.headers())["dlq.source.topic"].decode() == f"{main.app_id}-account-calls"
    main.produce([keyed(group("after-garbage-u", "after-garbage", 1))])
    wait_until(
        lambda: main.workers[0].get("/accounts/after-garbage").status_code == 200, 60, what="processing to go on"
    )


def scrape(workers) -> list[list[tuple[str, set[str], float]]]:
    """One /metrics scrape per worker, parsed into (name, labels, value) samples.

    A worker refreshes all its state gauges in one step of its event loop, so the
    samples of one scrape agree with each other; two scrapes may straddle a
    refresh (accounts still arriving, a rebalance) and need not."""
    snapshot = []
    for w in workers:
        samples = []
        for line in w.get("/metrics").text.splitlines():
            if line.startswith("#"):
                continue
            sample, _, value = line.rpartition(" ")
            sample_name, _, label_part = sample.partition("{")
            samples.append((sample_name, set(label_part.rstrip("}").split(",")) - {""}, float(value)))
        snapshot.append(samples)
    return snapshot


def sample_total(samples, name: str, **labels: str) -> float:
    """A metric's samples with these labels, summed (as PromQL's sum() would)."""
    want = {f'{k}="{v}"' for k, v in labels.items()}
    return sum(value for n, have, value in samples if n == name and want <= have)


def metric_total(workers, name: str, **labels: str) -> float:
    """A metric's samples with these labels, summed over workers."""
    return sum(sample_total(samples, name, **labels) for samples in scrape(workers))


def test_state_gauges_count_each_account_once_across_workers(main: Cluster):
    """Each worker reports only the partitions it owns: sums over workers are exact."""
    accounts = [f"gauge-{i}" for i in range(10)]
    # one account that activates, so there are output records to time as well
    main.produce([keyed(group(f"{a}-u", a, 1, plan="trial")) for a in accounts] + seed_messages("gauge-seed"))
    accounts.append("gauge-seed")
    for a in accounts:
        wait_until(lambda a=a: main.workers[0].get(f"/accounts/{a}").status_code == 200, 60, what=a)
    known = sum(1 for w in main.workers for a in accounts if w.get(f"/accounts/{a}").status_code == 200) // 2
    buckets = [f"{b:.1f}" for b in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)]

    def gauges_agree() -> bool:
        """Within each worker's scrape, the accounts by state and by activation
        rate both sum to the accounts it owns; over workers they cover them all."""
        owned = 0.0
        for samples in scrape(main.workers):
            keys = sample_total(samples, "stream_table_keys", table="accounts")
            by_state = sample_total(samples, "stream_accounts", state="activated") + sample_total(
                samples, "stream_accounts", state="not_activated"
            )
            by_rate = sum(sample_total(samples, "stream_accounts_by_activation_rate", bucket=b) for b in buckets)
            if not keys == by_state == by_rate:
                return False
            owned += keys
        return owned >= known

    wait_until(gauges_agree, 60, 1.0, "state gauges to cover every account exactly once")

    def key_counts_match_digests() -> bool:
        """The users and directory key gauges count what each worker owns (the
        digest view reads the same partitions through Faust's own store)."""
        for w, samples in zip(main.workers, scrape(main.workers), strict=True):
            digests = w.get("/debug/digest").json()
            for table in ("users", "directory"):
                if sample_total(samples, "stream_table_keys", table=table) != digests[table]["keys"]:
                    return False
        return True

    wait_until(key_counts_match_digests, 60, 1.0, "users and directory key gauges to match each worker's tables")
    assert metric_total(main.workers, "stream_table_keys", table="users") >= len(accounts)
    wait_until(
        lambda: metric_total(main.workers, "stream_worker_ready") == len(main.workers),
        60,
        1.0,
        "every worker to report ready",
    )
    for group_name in ("tables", "input"):  # both consumer groups' assignments are counted
        assert metric_total(main.workers, "stream_rebalances_total", group=group_name) >= len(main.workers)
    assert metric_total(main.workers, "stream_processing_latency_seconds_count") > 0
    wait_until(
        lambda: metric_total(main.workers, "stream_event_to_output_seconds_count") > 0,
        60,
        1.0,
        "the activation's records to be timed",
    )
    lag_lines = [
        x
        for w in main.workers
        for x in w.get("/metrics").text.splitlines()
        if x.startswith("stream_consumer_lag_messages{")
    ]
    assert lag_lines and all(float(x.split()[-1]) >= 0 for x in lag_lines)
