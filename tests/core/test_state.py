"""State records: what a write encodes is what the state holds."""

from __future__ import annotations

from dataclasses import replace

from stream.core.state import AccountState


def test_a_written_account_re_encodes_its_triggers_when_they_change():
    """The once-only trigger keys are kept encoded from the last write; a key
    marked or forgotten since, or the dict replaced, shows in the next one."""
    state = AccountState("a")
    state.mark_triggered("no_first_key:u0", 5)
    first = state.to_bytes()
    assert state.to_bytes() == first == replace(state).to_bytes()
    state.mark_triggered("inactive:u0:20", 9)
    assert AccountState.from_bytes("a", state.to_bytes()).triggered == {"no_first_key:u0": 5, "inactive:u0:20": 9}
    state.forget_triggered(["no_first_key:u0"])
    state.mark_triggered("stuck:u0:m1:v1", 11)  # as many keys as before, other ones
    assert AccountState.from_bytes("a", state.to_bytes()).triggered == {"inactive:u0:20": 9, "stuck:u0:m1:v1": 11}
    state.triggered["pql:v1"] = 12  # written behind mark_triggered: the size shows it
    assert state.to_bytes() == replace(state).to_bytes()
    state.triggered = {"pql:v2": 13}  # replaced wholesale
    assert AccountState.from_bytes("a", state.to_bytes()).triggered == {"pql:v2": 13}
    state.forget_triggered([])  # nothing forgotten: the kept encoding stays
    assert state.triggered_json is not None
