"""Living baseline: a criteria version published at runtime re-evaluates every account."""

from __future__ import annotations

import copy
from pathlib import Path

import orjson
import yaml

from stream.core.criteria import parse_criteria
from stream.workload import WorkloadSpec, generate_messages
from tests.integration.expectations import converged, differences, expected_views, live_views, offline
from tests.integration.harness import ROOT, Cluster, TopicReader, wait_until

SPEC = WorkloadSpec(accounts=8, days=8, seed=11)


def test_runtime_criteria_change_adds_a_milestone(clusters: dict[str, Cluster], tmp_path: Path):
    cluster = clusters["criteria"]
    worker = cluster.workers[0]
    doc = yaml.safe_load((ROOT / "deploy" / "criteria.yaml").read_text())
    v3 = parse_criteria(doc)
    messages = list(generate_messages(SPEC))
    cluster.produce(messages)
    before = offline(v3, messages)
    expected = expected_views(before)
    wait_until(lambda: converged(worker, expected), 120, 1.0, "all accounts to match the offline run")

    # v4: the AI editor becomes a user milestone too, and a new flagship appears
    new_doc = copy.deepcopy(doc)
    new_doc["version"] = 4
    new_doc["user_milestones"].append({"id": "ai_user", "event": "AI Edit Applied"})
    new_doc["account_milestones"].append({"id": "brand_kit", "event": "Brand Kit Applied", "flagship": True})
    path = tmp_path / "criteria-v4.yaml"
    path.write_text(yaml.safe_dump(new_doc))
    with TopicReader(cluster.bootstrap, cluster.topics["changes"]) as changes:
        done = cluster.run("criteria", "publish", str(path))
        assert done.returncode == 0, done.stderr
        v4 = parse_criteria(new_doc)
        before.change_criteria(v4, at_ms=0)
        expected = expected_views(before)
        wait_until(lambda: converged(worker, expected), 120, 1.0, "every account re-evaluated under v4")

        def v4_records():
            return [r for r in changes.values() if r["criteria_version"] == 4]

        records = wait_until(v4_records, 30, what="criteria_changed records")
    assert all(r["reason"] == "criteria_changed" for r in records)
    # users who used the AI editor last week reach the new milestone now
    ai_users = {r["user_id"] for r in records if r["milestone"] == "ai_user"}
    assert ai_users == {u for (a, u), s in before.users.items() if "ai_user" in s.reached} and ai_users
    # accounts that were activated are not any more: nobody applied a brand kit
    assert {r["account_id"] for r in records if r["kind"] == "deactivated" and r["level"] == "account"} == {
        a for a, s in offline(v3, messages).accounts.items() if s.activated_at is not None
    }
    views = live_views(worker, sorted(before.accounts))
    assert all(v["criteria_version"] == 4 and "brand_kit" in v["milestones"]["missing"] for v in views.values())
    assert not differences(expected, live_views(worker, sorted(expected)))


def test_bad_criteria_are_rejected_naming_the_field(clusters: dict[str, Cluster], tmp_path: Path):
    cluster = clusters["criteria"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 5\nuser_milestones:\n  - {id: x, event: E, min_count: zero}\naccount_milestones: []\n")
    checked = cluster.run("criteria", "check", str(bad))
    assert checked.returncode == 1
    assert b"user_milestones[0].min_count" in checked.stderr
    good = cluster.run("criteria", "check", str(ROOT / "deploy" / "criteria.yaml"))
    assert good.returncode == 0 and b"version 3" in good.stdout
    # published anyway (by another tool): the worker refuses it and keeps running
    with TopicReader(cluster.bootstrap, cluster.topics["dlq"]) as dlq:
        cluster.produce([(b"criteria", bad.read_bytes())], topic=cluster.topics["criteria"])

        def rejected():
            return [m for m in dlq.poll() if dict(m.headers())["dlq.reason"] == b"bad_criteria"]

        (msg,) = wait_until(rejected, 60, what="the bad criteria in the DLQ")
    assert b"min_count" in dict(msg.headers())["dlq.detail"]
    assert orjson.loads(cluster.workers[0].get("/health").content)["status"] == "ready"


def test_newer_criteria_file_at_start_is_adopted(clusters: dict[str, Cluster], tmp_path: Path):
    """Restarting workers with a newer file rolls it out; an older file never rolls back."""
    cluster = clusters["criteria"]
    worker = cluster.workers[0]
    doc = yaml.safe_load((ROOT / "deploy" / "criteria.yaml").read_text())
    doc["version"] = 9
    doc["activation_threshold"] = 0.6
    newer = tmp_path / "criteria-v9.yaml"
    newer.write_text(yaml.safe_dump(doc))
    worker.stop()
    worker.env["STREAM_CRITERIA"] = str(newer)
    worker.start().wait_ready()

    def on_v9() -> bool:
        views = live_views(worker, ["acct-0000", "acct-0001"])
        return all(isinstance(v, dict) and v["criteria_version"] == 9 for v in views.values())

    wait_until(on_v9, 60, what="accounts re-evaluated under the file's v9")
    # back to the v3 file: v9 stays
    worker.stop()
    worker.env["STREAM_CRITERIA"] = str(ROOT / "deploy" / "criteria.yaml")
    worker.start().wait_ready()
    assert worker.get("/health").json()["criteria_version"] == 9
    assert live_views(worker, ["acct-0000"])["acct-0000"]["criteria_version"] == 9
