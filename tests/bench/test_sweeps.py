"""`python -m bench.sweeps` keeps working, and its digest means something."""

from __future__ import annotations

import pytest

from bench.runs import demo_criteria
from bench.sweeps import main, replayed_accounts, time_sweeps
from bench.workload import SMALL


@pytest.fixture(scope="module")
def stored() -> dict[str, bytes]:
    return replayed_accounts(SMALL)


def test_every_account_is_swept_at_every_midnight_and_the_digest_is_repeatable(stored):
    criteria = demo_criteria()
    first = time_sweeps(stored, criteria, repeat=2, afresh=False)
    again = time_sweeps(stored, criteria, repeat=1, afresh=False)
    # the workload spans 7 days: its calls' midnights, one per day after the first call
    assert first.account_sweeps % len(stored) == 0 and first.account_sweeps // len(stored) >= SMALL.days
    assert first.micros_per_account > 0
    assert (again.outputs, again.digest) == (first.outputs, first.digest)


def test_forgetting_what_fired_makes_it_fire_again(stored):
    criteria = demo_criteria()
    steady = time_sweeps(stored, criteria, repeat=1, afresh=False)
    afresh = time_sweeps(stored, criteria, repeat=1, afresh=True)
    assert afresh.outputs > steady.outputs and afresh.digest != steady.digest


def test_the_command_prints_its_figures(capsys):
    assert main(["--small", "--repeat", "1"]) == 0
    printed = capsys.readouterr().out
    assert "account-sweeps" in printed and "digest" in printed
