"""The midnight sweeps alone, in memory: what a sweep costs per account.

A sweep runs every timer and alert rule for every account of a partition, once
per midnight. In `make bench` its cost is hidden in the pipeline's rate (the
workload packs 14 days into a minute, so the sweeps are ~10% of a run, inside
the run-to-run noise), so changes to the rules are measured here, where the
only thing timed is :func:`stream.core.sweep.sweep_account`:

1. the benchmark's workload (`bench.workload`) is replayed through the core
   (`stream.core.replay`), and every account's state is kept as bytes;
2. for each of ``--repeat`` rounds, the states are decoded afresh, their sweep
   marks reset, and every account is swept at every midnight from the first
   call's to the last's (with ``--afresh``, their fired triggers and alerts are
   forgotten first, so every condition fires again);
3. it prints microseconds per account-sweep (best round), the output count
   and a digest of every output, which must not change when a change to the
   rules is meant to change only their speed.

    python -m bench.sweeps                      # the full workload (~1 min to replay)
    python -m bench.sweeps --afresh --repeat 5
    python -m bench.sweeps --small              # for CI (figures meaningless)
"""

from __future__ import annotations

import argparse
import hashlib
import time
from dataclasses import dataclass

from bench.runs import demo_criteria, replay
from bench.workload import SMALL, BenchSpec, BenchWorkload
from stream.core.criteria import Criteria
from stream.core.state import AccountState
from stream.core.sweep import sweep_account
from stream.core.timeutil import MS_PER_DAY
from stream.gc_tuning import tune_gc


@dataclass(frozen=True, slots=True)
class SweepFigures:
    account_sweeps: int
    best_seconds: float
    outputs: int
    digest: str

    @property
    def micros_per_account(self) -> float:
        return 1e6 * self.best_seconds / max(self.account_sweeps, 1)


def replayed_accounts(spec: BenchSpec) -> dict[str, bytes]:
    """Every account's state after the workload (with the demo's criteria), as the worker stores it."""
    pipeline, _events, _seconds = replay(BenchWorkload(spec).single_messages())
    return {account_id: state.to_bytes() for account_id, state in pipeline.accounts.items()}


def midnights_of(states: list[AccountState]) -> list[int]:
    """Every midnight after the first call up to the one after the last."""
    first = min(s.first_seen for s in states if s.first_seen is not None)
    last = max(s.last_seen for s in states if s.last_seen is not None)
    return list(range((first // MS_PER_DAY + 1) * MS_PER_DAY, (last // MS_PER_DAY + 1) * MS_PER_DAY + 1, MS_PER_DAY))


def time_sweeps(stored: dict[str, bytes], criteria: Criteria, repeat: int, afresh: bool) -> SweepFigures:
    """Sweep every account at every midnight, ``repeat`` times over fresh copies."""
    digest = hashlib.sha256()
    best, sweeps, outputs = float("inf"), 0, 0
    for round_ in range(repeat):
        states = [AccountState.from_bytes(account_id, raw) for account_id, raw in sorted(stored.items())]
        for state in states:
            state.swept = 0
            if afresh:
                state.triggered.clear()
                state.alerts.clear()
                state.resolved.clear()
        midnights = midnights_of(states)
        produced = []
        started = time.perf_counter()
        for midnight in midnights:
            for state in states:
                produced.append(sweep_account(state, criteria, midnight))
        best = min(best, time.perf_counter() - started)
        if round_ == 0:  # every round sweeps the same states the same way
            sweeps = len(midnights) * len(states)
            for out in produced:
                outputs += len(out.triggers) + len(out.alerts)
                digest.update(repr((out.triggers, out.alerts)).encode())
    return SweepFigures(sweeps, best, outputs, digest.hexdigest()[:16])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="a few thousand calls, for CI (figures meaningless)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds over fresh copies of the states (best counts)")
    parser.add_argument("--afresh", action="store_true", help="forget fired triggers and alerts first")
    args = parser.parse_args(argv)
    tune_gc()  # as the worker runs
    criteria = demo_criteria()
    spec = SMALL if args.small else BenchSpec()
    began = time.perf_counter()
    stored = replayed_accounts(spec)
    print(f"replayed {spec.calls:,} calls into {len(stored):,} accounts in {time.perf_counter() - began:.1f} s")
    figures = time_sweeps(stored, criteria, max(1, args.repeat), args.afresh)
    print(
        f"{figures.account_sweeps:,} account-sweeps: {figures.micros_per_account:.1f} µs each "
        f"(best of {max(1, args.repeat)}: {figures.best_seconds:.3f} s), "
        f"{figures.outputs:,} triggers and alerts, digest {figures.digest}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
