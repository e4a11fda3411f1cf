from __future__ import annotations

import io

import orjson

from stream.cli import main, message_key, read_lines
from tests.conftest import ROOT


def test_message_key_follows_the_producer_convention():
    assert message_key({"type": "track", "userId": "u", "context": {"groupId": "g"}}) == b"g"
    assert message_key({"type": "group", "userId": "u", "groupId": "g"}) == b"g"
    assert message_key({"type": "identify", "userId": "u"}) == b"u"
    assert message_key({"batch": [{"type": "identify", "userId": "u"}]}) == b"u"
    assert message_key([1]) is None


def test_read_lines_keeps_bad_lines_for_the_dlq():
    data = io.BytesIO(orjson.dumps({"type": "identify", "userId": "u"}) + b"\n\nnot json\n")
    assert [k for k, _v in read_lines(data)] == [b"u", None]


def test_criteria_check(tmp_path, capsys):
    assert main(["criteria", "check", str(ROOT / "deploy" / "criteria.yaml")]) == 0
    assert "version 3" in capsys.readouterr().out
    bad = tmp_path / "c.yaml"
    bad.write_text("version: 1\nuser_milestones: [{id: a, event: E, flagship: maybe}]\n")
    assert main(["criteria", "check", str(bad)]) == 1
    assert "user_milestones[0].flagship" in capsys.readouterr().err
    assert main(["criteria", "check", str(tmp_path / "missing.yaml")]) == 1


def test_worker_without_broker_says_what_to_do(monkeypatch, capsys):
    monkeypatch.delenv("STREAM_BROKER_URL", raising=False)
    assert main(["worker"]) == 2
    assert "STREAM_BROKER_URL" in capsys.readouterr().err
