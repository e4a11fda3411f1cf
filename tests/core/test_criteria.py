from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from stream.core.criteria import load_criteria_text, parse_criteria, signature
from stream.core.errors import CriteriaError, StreamError
from tests.conftest import ROOT

BASE: dict[str, Any] = yaml.safe_load((ROOT / "deploy" / "criteria.yaml").read_text())


def test_demo_criteria_parse(criteria):
    assert criteria.version == 3
    assert criteria.user_milestone_ids == ("source_connected", "report_created", "report_shared")
    shared = criteria.index.user_by_id["report_shared"]
    assert shared.where == (("channel", "email"),)
    assert shared.signature == "Report Shared|channel=email"
    team = {m.id: m for m in criteria.account_milestones}
    assert team["team_invited"].min_count == 3 and team["team_invited"].event == "Teammate Invited"
    assert team["wide_sharing"].min_share == 0.3
    assert team["exec_sees_value"].role == "executive" and team["exec_sees_value"].min_users == 1
    assert team["ai_editing"].flagship


def test_flagships_user_milestones_first():
    doc = copy.deepcopy(BASE)
    doc["user_milestones"][2]["flagship"] = True
    criteria = parse_criteria(doc)
    assert criteria.flagship_ids == ("report_shared", "ai_editing")
    assert criteria.user_flagship_ids == ("report_shared",)


def _mutated(path: list[Any], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    target = doc
    for step in path[:-1]:
        target = target[step]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (["version"], 0, "version"),
        (["version"], "3", "version"),
        (["version"], KeyError, "version"),
        (["activation_threshold"], 1.5, "activation_threshold"),
        (["user_milestones"], [], "user_milestones"),
        (["user_milestones", 1, "min_count"], 0, "user_milestones[1].min_count"),
        (["user_milestones", 1, "id"], "Report Created", "user_milestones[1].id"),
        (["user_milestones", 1, "id"], "source_connected", "user_milestones[1].id"),
        (["user_milestones", 0, "evnt"], "x", "user_milestones[0].evnt"),
        (["user_milestones", 0, "event"], "", "user_milestones[0].event"),
        (["user_milestones", 2, "where"], {"channel": ["email"]}, "user_milestones[2].where.channel"),
        (["account_milestones", 1, "user_milestone"], "nope", "account_milestones[1].user_milestone"),
        (["account_milestones", 2, "min_share"], 1.2, "account_milestones[2].min_share"),
        (["account_milestones", 0, "role"], "executive", "account_milestones[0].role"),
        (["account_milestones", 4, "flagship"], "yes", "account_milestones[4].flagship"),
        (["surprise"], 1, "surprise"),
    ],
)
def test_invalid_criteria_name_the_field(path, value, field):
    with pytest.raises(CriteriaError) as info:
        parse_criteria(_mutated(path, value))
    assert info.value.field == field
    assert isinstance(info.value, StreamError)


def test_account_rule_needs_exactly_one_shape():
    doc = _mutated(["account_milestones", 0, "user_milestone"], "report_created")
    with pytest.raises(CriteriaError, match="exactly one"):
        parse_criteria(doc)


def test_yaml_syntax_error_names_the_line():
    with pytest.raises(CriteriaError) as info:
        load_criteria_text("version: 3\nuser_milestones: [\n")
    assert "line" in info.value.field


def test_threshold_count():
    c = parse_criteria(_mutated(["activation_threshold"], 0.6))
    assert c.activation_count(5) == 3
    assert c.activation_count(3) == 2


def test_signature_is_canonical():
    assert signature("E", (("a", True), ("b", 2.0))) == "E|a=true&b=2"
