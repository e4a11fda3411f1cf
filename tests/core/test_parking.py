from __future__ import annotations

import orjson

from stream.core.clock import TimeRules
from stream.core.envelope import Envelope
from stream.core.parking import DirectoryClock, expire_parked
from stream.core.replay import OfflinePipeline
from stream.core.routing import DirectoryEntry, ParkingLimits
from tests.core.helpers import group, track

HOUR = 60  # the helpers take minutes
GRACE = ParkingLimits(grace_ms=3_600_000, max_parked_per_user=10)
RULES = TimeRules()  # 6 h of allowed lateness
#: a call this long after the parked one passes its grace and the lateness
PAST = 7 * HOUR + 1


def reasons(p: OfflinePipeline) -> list[str]:
    return [r.reason for r in p.rejections]


def test_a_parked_call_waits_until_every_input_partition_is_read_past_its_grace(criteria):
    p = OfflinePipeline(criteria, parking=GRACE, input_partitions=2)
    parked = track("x", "stranger", None, "Report Created", 1)
    p.feed(parked, partition=0, offset=0)
    p.feed(track("a", "other", "acme", "Logged In", 1 + PAST), partition=0, offset=1)
    assert reasons(p) == []  # partition 1 not read that far: its group call may be there
    p.feed(track("b", "other", "acme", "Logged In", 1 + PAST - 2), partition=1, offset=0)
    assert reasons(p) == []  # not quite: 1 minute short
    p.feed(track("c", "other", "acme", "Logged In", 1 + PAST), partition=1, offset=1)
    assert reasons(p) == ["no_account"]  # no call of its own user was needed
    assert p.rejections[0].raw == parked
    assert not p.directory["stranger"].pending
    assert all(not clock.parked for clock in p.directory_clocks.values())


def test_a_group_call_on_a_lagging_partition_still_releases_the_parked_calls(criteria):
    """What the benchmark showed: one worker read one input partition 8 days
    of event time ahead of another. The user's own later calls (keyed by user)
    came from the partition read ahead; its group call, dated before them all,
    from the lagging one."""
    p = OfflinePipeline(criteria, input_partitions=2)  # the default grace: 7 days
    ten_days = 10 * 24 * HOUR
    for n in range(3):  # the user's calls over ten days, naming no account
        p.feed(track(f"t{n}", "u", None, "Report Created", 10 + n * ten_days // 2), partition=0, offset=n)
    p.feed(group("u", "acme", 5), partition=1, offset=0)  # read last, dated first
    assert reasons(p) == []
    assert p.users[("acme", "u")].events["Report Created"].n == 3


def test_the_parked_index_follows_the_entries():
    clock = DirectoryClock()
    entry = DirectoryEntry(pending=[{"ts": 500}, {"ts": 200}])
    assert clock.note("u", entry) is True
    assert clock.note("u", entry) is False  # unchanged
    assert clock.parked == {"u": 200}
    clock.note("v", DirectoryEntry(pending=[{"ts": 100}]))
    assert clock.due(200 + GRACE.grace_ms, GRACE) == ["v"]  # strictly before the limit
    assert clock.due(201 + GRACE.grace_ms, GRACE) == ["u", "v"]
    entry.pending = []
    assert clock.note("u", entry) is True
    assert clock.parked == {"v": 100}


def test_expire_parked_keeps_the_calls_still_within_their_grace():
    entry = DirectoryEntry(pending=[Envelope("track", "", "u", t, "u0:d:t:0", t).to_dict() for t in (1, 9)])
    expired = expire_parked(entry, 5 + GRACE.grace_ms, GRACE)
    assert [e.ts for e in expired] == [1]
    assert [p["ts"] for p in entry.pending] == [9]


def test_the_directory_clock_survives_a_restart_and_waits_for_silent_partitions():
    lanes = ("d:t:0", "d:t:1")
    clock = DirectoryClock.load(None, 0, lanes)
    clock.observe("d:t:0", 10 * 3_600_000, 0)
    assert clock.watermark(RULES, 0) == 0  # d:t:1 has said nothing yet
    clock.observe("d:t:1", 8 * 3_600_000, 0)
    assert clock.watermark(RULES, 0) == 2 * 3_600_000
    clock.parked["u"] = 7
    raw = clock.dump()
    again = DirectoryClock.load(raw, 1_000, lanes)
    assert again.parked == {"u": 7}
    assert again.progress.lanes == clock.progress.lanes
    assert again.watermark(RULES, 1_000) == 2 * 3_600_000
    # a partition silent for longer than idle_ms no longer holds it back
    again.observe("d:t:0", 20 * 3_600_000, RULES.idle_ms + 2_000)
    assert again.watermark(RULES, RULES.idle_ms + 2_000) == 14 * 3_600_000
    assert orjson.loads(raw)["parked"] == {"u": 7}


def test_a_call_parked_after_the_input_passed_its_grace_gives_up_at_once(criteria):
    p = OfflinePipeline(criteria, parking=GRACE)
    p.feed(track("a", "other", "acme", "Logged In", 600), offset=0)
    old = track("x", "stranger", None, "Report Created", 0)  # the input is already 10 h further
    p.feed(old, offset=1)
    assert [r.raw for r in p.rejections] == [old]
    assert all(not clock.parked for clock in p.directory_clocks.values())
