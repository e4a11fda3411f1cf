"""`stream demo`: the whole product on one machine, shown live in the terminal.

Starts the embedded broker (unless STREAM_BROKER_URL is set), one real worker
process, publishes the synthetic SaaS stream at a steady rate, and renders the
accounts' activation from the activation-changes topic as it changes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from confluent_kafka import Consumer, TopicPartition
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from stream.broker import EmbeddedBroker, die_with_parent, free_port
from stream.kafka_admin import client_conf, ensure_topics, make_producer
from stream.settings import Settings
from stream.workload import WorkloadSpec, generate_messages

DEMO_DIR = Path(".demo")
MAX_ROWS = 24


@dataclass
class AccountRow:
    rate: float = 0.0
    missing: list[str] = field(default_factory=list)
    activated: bool = False
    users_activated: set[str] = field(default_factory=set)
    last_kind: str = ""
    #: 7-day engagement and its direction, polled from the worker's HTTP view
    engagement: float | None = None
    direction: str = ""


@dataclass
class DemoState:
    total: int
    published: int = 0
    changes: int = 0
    accounts: dict[str, AccountRow] = field(default_factory=dict)
    done_publishing: bool = False
    last_change_at: float = field(default_factory=time.monotonic)

    def apply(self, record: dict[str, Any]) -> None:
        self.changes += 1
        self.last_change_at = time.monotonic()
        row = self.accounts.setdefault(record["account_id"], AccountRow())
        if record["level"] == "account":
            row.rate, row.missing = record["new_rate"], record["missing"]
            row.activated = record["activated_at"] is not None
            if record["kind"] == "milestone_reached":
                row.last_kind = f"+{record['milestone']}"
            elif record["kind"] in ("activated", "deactivated"):
                row.last_kind = record["kind"]
        elif record["kind"] == "activated":
            row.users_activated.add(record["user_id"])
        elif record["kind"] == "deactivated":
            row.users_activated.discard(record["user_id"])


def _bar(rate: float, width: int = 20) -> str:
    filled = round(rate * width)
    color = "green" if rate >= 1 else "yellow" if rate >= 0.5 else "red"
    return f"[{color}]{'█' * filled}[/][dim]{'░' * (width - filled)}[/] {rate:4.0%}"


def render(state: DemoState, progress: Progress, web: str) -> Group:
    table = Table(title="Accounts: activation (activation-changes topic) and engagement (HTTP)", expand=False)
    table.add_column("account", no_wrap=True, min_width=11)
    table.add_column("activation rate", no_wrap=True, min_width=26)
    table.add_column("users ✓", justify="right", min_width=7)
    table.add_column("engagement 7d", justify="right", no_wrap=True)
    table.add_column("missing milestones", overflow="ellipsis", no_wrap=True, max_width=32)
    table.add_column("last change", overflow="ellipsis", no_wrap=True)
    for account_id in sorted(state.accounts)[:MAX_ROWS]:
        row = state.accounts[account_id]
        name = f"[bold green]{account_id} ✓[/]" if row.activated else account_id
        arrow = {"rising": "[green]↑[/]", "falling": "[red]↓[/]", "stable": "→"}.get(row.direction, "")
        engagement = "" if row.engagement is None else f"{row.engagement:,.0f} {arrow}"
        table.add_row(
            name, _bar(row.rate), str(len(row.users_activated)), engagement, ", ".join(row.missing), row.last_kind
        )
    activated = sum(1 for r in state.accounts.values() if r.activated)
    hidden = max(0, len(state.accounts) - MAX_ROWS)
    footer = (
        f"accounts activated: [bold]{activated}[/]/{len(state.accounts)}"
        + (f" ({hidden} more not shown)" if hidden else "")
        + f"   change records: {state.changes}\n"
        f"account:  curl {web}/accounts/acct-0000\n"
        f"user:     curl {web}/accounts/acct-0000/users/acct-0000-u001\n"
        f"metrics:  curl {web}/metrics\n"
        "Ctrl-C stops everything"
    )
    return Group(progress, table, footer)


def _publish(settings: Settings, spec: WorkloadSpec, rate: float, state: DemoState, stop: threading.Event) -> None:
    producer = make_producer(settings)
    started = time.monotonic()
    for key, value in generate_messages(spec):
        if stop.is_set():
            break
        while True:
            try:
                producer.produce(settings.topics.events, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.05)
        state.published += 1
        ahead = state.published / rate - (time.monotonic() - started)
        if ahead > 0:
            producer.poll(0)
            stop.wait(ahead)
    producer.flush(30)
    state.done_publishing = True


def _consume(settings: Settings, state: DemoState, stop: threading.Event) -> None:
    consumer = Consumer(
        {
            **client_conf(settings),
            "group.id": f"demo-view-{os.getpid()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    topic = settings.topics.changes
    meta = consumer.list_topics(topic, timeout=10).topics[topic]
    consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
    try:
        while not stop.is_set():
            for msg in consumer.consume(500, 0.2):
                if msg.error() is None:
                    state.apply(orjson.loads(msg.value()))
    finally:
        consumer.close()


def _poll_engagement(web: str, state: DemoState, stop: threading.Event) -> None:
    """Engagement is state, not a topic: read it from the worker's view of each shown account."""
    with httpx.Client(base_url=web, timeout=2) as http:
        while not stop.wait(1.0):
            for account_id in sorted(state.accounts)[:MAX_ROWS]:
                with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                    r = http.get(f"/accounts/{account_id}")
                    if r.status_code == 200:
                        window = r.json()["engagement"]["window_7d"]
                        row = state.accounts[account_id]
                        row.engagement, row.direction = window["total"], window["direction"]


def _wait_ready(url: str, worker: subprocess.Popen[bytes], log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited with code {worker.returncode}; see {log}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        time.sleep(0.5)
    raise RuntimeError(f"the worker was not ready after {timeout:.0f}s; see {log}")


def run_demo(
    settings: Settings, accounts: int = 40, days: int = 21, rate: float = 400.0, exit_when_done: bool = False
) -> int:
    console = Console()
    broker: EmbeddedBroker | None = None
    worker: subprocess.Popen[bytes] | None = None
    stop = threading.Event()
    DEMO_DIR.mkdir(exist_ok=True)
    try:
        if not settings.broker_url:
            broker = EmbeddedBroker(log_path=DEMO_DIR / "broker.log").start()
            settings = settings.with_broker(broker.url)
            console.print(f"embedded broker on [bold]{broker.url}[/] (memory only)")
            data_dir = DEMO_DIR / "data"
            shutil.rmtree(data_dir, ignore_errors=True)  # the broker starts empty: so must the tables
        else:
            console.print(f"using the broker at [bold]{settings.broker_url}[/]")
            data_dir = settings.data_dir
        port = settings.web_port
        with contextlib.suppress(OSError):
            import socket

            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                port = free_port()  # the default port is taken: pick another
        web = f"http://127.0.0.1:{port}"
        ensure_topics(settings)
        log = DEMO_DIR / "worker.log"
        env = dict(
            os.environ,
            STREAM_BROKER_URL=settings.broker_url or "",
            STREAM_DATA_DIR=str(data_dir),
            STREAM_WEB_PORT=str(port),
        )
        with open(log, "ab") as out:
            worker = subprocess.Popen(
                [sys.executable, "-m", "stream.cli", "worker"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        with console.status("starting the worker (it joins its consumer group and restores its tables)…"):
            _wait_ready(web, worker, log)
        console.print(f"worker ready: [bold]{web}[/]   (log: {log})")

        spec = WorkloadSpec(accounts=accounts, days=days)
        total = sum(1 for _ in generate_messages(spec))
        state = DemoState(total=total)
        threads = [
            threading.Thread(target=_publish, args=(settings, spec, rate, state, stop), daemon=True),
            threading.Thread(target=_consume, args=(settings, state, stop), daemon=True),
            threading.Thread(target=_poll_engagement, args=(web, state, stop), daemon=True),
        ]
        for t in threads:
            t.start()
        progress = Progress(
            TextColumn("publishing synthetic SaaS events"), BarColumn(), TextColumn("{task.completed}/{task.total}")
        )
        task = progress.add_task("events", total=total)
        with Live(render(state, progress, web), console=console, refresh_per_second=4) as live:
            while True:
                progress.update(task, completed=state.published)
                live.update(render(state, progress, web))
                if worker.poll() is not None:
                    raise RuntimeError(f"the worker exited with code {worker.returncode}; see {log}")
                quiet = time.monotonic() - state.last_change_at
                if exit_when_done and state.done_publishing and quiet > 5:
                    break
                time.sleep(0.25)
        activated = sum(1 for r in state.accounts.values() if r.activated)
        console.print(
            f"\ndone: {state.published} events published, {state.changes} change records, "
            f"{activated}/{len(state.accounts)} accounts activated"
        )
        return 0
    except KeyboardInterrupt:
        console.print("\nstopping…")
        return 0
    finally:
        stop.set()
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
        if broker is not None:
            broker.stop()
