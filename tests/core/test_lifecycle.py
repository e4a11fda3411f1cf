from __future__ import annotations

import copy
import json

import fastjsonschema
import yaml

from stream.core.criteria import parse_criteria
from stream.core.replay import OfflinePipeline
from stream.core.segment import schemas_dir
from tests.conftest import ROOT
from tests.core.helpers import group, identify, track

DOC = yaml.safe_load((ROOT / "deploy" / "criteria.yaml").read_text())
SCHEMA = fastjsonschema.compile(json.loads((schemas_dir() / "lifecycle-trigger.schema.json").read_text()))


def activate(p: OfflinePipeline, account: str, plan: str) -> None:
    msgs = [group(f"{account}-u{i}", account, i, plan=plan) for i in range(3)]
    msgs.append(identify(f"{account}-u0", 5, role="executive"))
    for i in range(3):
        u = f"{account}-u{i}"
        msgs += [
            track(f"{u}c", u, account, "Data Source Connected", 10 + i),
            track(f"{u}r", u, account, "Report Created", 20 + i),
            track(f"{u}s", u, account, "Report Shared", 30 + i, channel="email"),
            track(f"{u}t", u, account, "Teammate Invited", 40 + i),
            track(f"{u}a", u, account, "AI Edit Applied", 50 + i),
        ]
    p.feed_all(msgs)


def test_milestone_celebration_names_the_next_milestone(criteria):
    p = OfflinePipeline(criteria)
    p.feed_all(
        [
            group("u", "a", 0),
            track("c", "u", "a", "Data Source Connected", 1),
            track("s", "u", "a", "Report Shared", 2, channel="email"),
        ]
    )
    got = [(t["kind"], t["milestone"], t["next_milestone"]) for t in p.triggers]
    assert got == [
        ("milestone_celebration", "source_connected", "report_created"),
        ("milestone_celebration", "report_shared", "report_created"),
    ]
    p.feed(track("r", "u", "a", "Report Created", 3), offset=10)
    assert (p.triggers[-1]["milestone"], p.triggers[-1]["next_milestone"]) == ("report_created", None)
    for t in p.triggers:
        SCHEMA(t)
    assert len({t["id"] for t in p.triggers}) == len(p.triggers)


def test_trial_account_reaching_activation_is_a_pql_once(criteria):
    p = OfflinePipeline(criteria)
    activate(p, "trial-co", "trial")
    activate(p, "paid-co", "business")
    pql = [t for t in p.triggers if t["kind"] == "pql"]
    assert [(t["account_id"], t["plan"], t["user_id"]) for t in pql] == [("trial-co", "trial", None)]
    SCHEMA(pql[0])
    # deactivated by a stricter version, then activated again under it: a new condition
    doc = copy.deepcopy(DOC)
    doc["version"] = 4
    doc["account_milestones"].append({"id": "brand_kit", "event": "Brand Kit Applied"})
    p.change_criteria(parse_criteria(doc), at_ms=0)
    p.feed(track("bk", "trial-co-u0", "trial-co", "Brand Kit Applied", 99), offset=1000)
    p.feed(track("bk2", "trial-co-u1", "trial-co", "Brand Kit Applied", 100), offset=1001)
    pql = [t for t in p.triggers if t["kind"] == "pql"]
    assert [t["criteria_version"] for t in pql] == [3, 4]


def test_trial_plans_are_configurable(criteria):
    doc = copy.deepcopy(DOC)
    doc["lifecycle"] = {"trial_plans": ["business"]}
    p = OfflinePipeline(parse_criteria(doc))
    activate(p, "trial-co", "trial")
    activate(p, "paid-co", "business")
    assert [t["account_id"] for t in p.triggers if t["kind"] == "pql"] == ["paid-co"]
