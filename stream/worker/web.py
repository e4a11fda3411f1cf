"""HTTP views on the worker's web port.

Account and user views are routed by Faust to the worker that owns the
account's partition, so any worker answers for any account.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from stream.core.criteria import Criteria
from stream.core.kpis import account_kpis, finalize, merge_partials
from stream.core.segment import valid_id
from stream.core.state import AccountState, UserState
from stream.core.views import account_view, user_view
from stream.worker.metrics import REGISTRY

if TYPE_CHECKING:
    from stream.worker.app import ActivationWorker

__all__ = ["register_views", "valid_id"]


def register_views(worker: ActivationWorker) -> None:
    app = worker.app

    def error(view: View, status: int, message: str) -> Response:
        return view.json({"error": message}, status=status)

    def account_answer(view: View, account_id: str, render: Callable[[AccountState, Criteria, int], Any]) -> Response:
        """Load an account this worker owns and render it as of its partition's clock."""
        if not valid_id(account_id):
            return error(view, 400, "malformed account id")
        raw = worker.accounts.get(account_id.encode())
        if raw is None:
            return error(view, 404, "unknown account")
        state = AccountState.from_bytes(account_id, raw)
        criteria = worker.criteria_of_version(state.criteria_version)
        return view.json(render(state, criteria, worker.clock_of_account(account_id)))

    @app.page("/accounts/{account_id}")
    @app.table_route(table=worker.accounts, match_info="account_id")
    async def get_account(view: View, request: Request, account_id: str) -> Response:
        swept = worker.partition_clock_swept(account_id)
        return account_answer(view, account_id, lambda s, c, now: account_view(s, c, now, swept))

    @app.page("/accounts/{account_id}/users/{user_id}")
    @app.table_route(table=worker.accounts, match_info="account_id")
    async def get_user(view: View, request: Request, account_id: str, user_id: str) -> Response:
        if not valid_id(account_id) or not valid_id(user_id):
            return error(view, 400, "malformed account or user id")
        raw_account = worker.accounts.get(account_id.encode())
        raw_user = worker.users.get(f"{account_id}\x1f{user_id}".encode())
        if raw_account is None or raw_user is None:
            return error(view, 404, "unknown account or user")
        state = AccountState.from_bytes(account_id, raw_account)
        user = UserState.from_bytes(account_id, user_id, raw_user)
        criteria = worker.criteria_of_version(state.criteria_version)
        return view.json(user_view(state, user, criteria, worker.clock_of_account(account_id)))

    @app.page("/accounts/{account_id}/kpis")
    @app.table_route(table=worker.accounts, match_info="account_id")
    async def get_account_kpis(view: View, request: Request, account_id: str) -> Response:
        return account_answer(view, account_id, account_kpis)

    @app.page("/kpis/partial")
    async def kpis_partial(view: View, request: Request) -> Response:
        """This worker's share of the KPIs (merged by ``/kpis``)."""
        return view.json(merge_partials(worker.kpi_partials()))

    @app.page("/kpis")
    async def kpis(view: View, request: Request) -> Response:
        """KPIs over every account: each worker's partial for the partitions
        it owns, merged. Answered by any worker."""
        hosts = sorted(worker.app.router.table_metadata(worker.accounts.name))
        own = str(worker.app.conf.canonical_url).rstrip("/")
        partials = []
        for host in hosts:
            if host.rstrip("/") == own:
                partials.append(merge_partials(worker.kpi_partials()))
                continue
            async with worker.app.http_client.get(f"{host.rstrip('/')}/kpis/partial") as response:
                if response.status != 200:
                    return error(view, 503, f"worker {host} did not answer ({response.status})")
                partials.append(await response.json())
        if not hosts:
            partials.append(merge_partials(worker.kpi_partials()))
        return view.json(finalize(merge_partials(partials)))

    @app.page("/health")
    async def health(view: View, request: Request) -> Response:
        ready = worker.is_ready()
        body: dict[str, Any] = {"status": "ready" if ready else "starting", "criteria_version": worker.latest_version()}
        return view.json(body, status=200 if ready else 503)

    @app.page("/debug/digest")
    async def digest(view: View, request: Request) -> Response:
        """Key count and a hash of every (key, value) per table on this worker:
        what restart and rebalance checks compare, key by key."""
        return view.json(worker.table_digests())

    @app.page("/metrics")
    async def metrics(view: View, request: Request) -> Response:
        return view.bytes(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST.split(";")[0])
