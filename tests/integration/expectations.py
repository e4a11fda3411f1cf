"""What the live system should show, computed offline with the same core."""

from __future__ import annotations

from typing import Any

from stream.core.clock import TimeRules
from stream.core.criteria import Criteria
from stream.core.replay import OfflinePipeline
from stream.core.views import account_view, user_view
from tests.integration.harness import TEST_LATENESS_SECONDS, WorkerProcess


def offline(criteria: Criteria, messages: list[tuple[bytes, bytes]], time: TimeRules | None = None) -> OfflinePipeline:
    p = OfflinePipeline(criteria, time=time or TimeRules(allowed_lateness_ms=TEST_LATENESS_SECONDS * 1000))
    p.feed_all(v for _k, v in messages)
    return p


def expected_views(p: OfflinePipeline) -> dict[str, Any]:
    views: dict[str, Any] = {}
    for account_id, state in p.accounts.items():
        views[account_id] = account_view(state, p.criteria, p.clock_for(account_id), p.swept_for(account_id))
    for (account_id, user_id), user in p.users.items():
        views[f"{account_id}/users/{user_id}"] = user_view(
            p.accounts[account_id], user, p.criteria, p.clock_for(account_id)
        )
    return views


def live_views(worker: WorkerProcess, keys: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in keys:
        r = worker.get(f"/accounts/{key}")
        out[key] = r.json() if r.status_code == 200 else r.status_code
    return out


def differences(expected: dict[str, Any], live: dict[str, Any]) -> list[str]:
    return [k for k in expected if expected[k] != live.get(k)]


class Mismatch(dict[str, Any]):
    """Falsy, but shows what differs when a wait for convergence times out."""

    def __bool__(self) -> bool:
        return False


def converged(worker: WorkerProcess, expected: dict[str, Any]) -> bool | Mismatch:
    """True once every account and user view equals the expectation."""
    live = live_views(worker, sorted(expected))
    diff = differences(expected, live)
    if not diff:
        return True
    key = diff[0]
    want, got = expected[key], live.get(key)
    if isinstance(want, dict) and isinstance(got, dict):
        fields = {f: (want.get(f), got.get(f)) for f in want if want.get(f) != got.get(f)}
    else:
        fields = {"view": (want, got)}
    return Mismatch(count=len(diff), first=key, fields=fields)
