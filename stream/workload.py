"""A realistic, deterministic synthetic SaaS event stream (Segment calls).

Accounts follow archetypes the seeds describe: some activate, some stall before
the valuable steps, some use the product heavily but never touch the flagship
feature (seed 000's "Lumen"), some go quiet. Same spec and seed, same bytes, so
the demo, the tests and the benchmark can all replay it exactly.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

ARCHETYPES = ("activating", "stalling", "heavy_no_flagship", "quiet")
ROLES = ("member", "member", "member", "member", "manager", "executive")
CHANNELS = ("email", "slack", "link")
#: The longest a call waits in a key's batch envelope (in event time).
FLUSH_AFTER = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    accounts: int = 40
    min_users: int = 3
    max_users: int = 15
    days: int = 21
    seed: int = 7
    start: datetime = datetime(2026, 10, 1, tzinfo=UTC)
    #: Share of track calls that name no account (resolved from group calls).
    no_account_share: float = 0.05
    #: Logins per user per active day (the low-value, high-volume event).
    logins_per_day: int = 2
    #: 0: one call per Kafka message; N: Segment batch envelopes of up to N calls.
    batch_size: int = 0


@dataclass(frozen=True, slots=True)
class Call:
    ts: datetime
    key: str
    doc: dict[str, object]


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Builder:
    def __init__(self, spec: WorkloadSpec) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.counter = 0
        self.calls: list[Call] = []

    def message_id(self) -> str:
        self.counter += 1
        return f"m{self.spec.seed}-{self.counter:08d}"

    def track(self, ts: datetime, user: str, account: str, event: str, props: dict[str, object] | None = None) -> None:
        doc: dict[str, object] = {
            "type": "track",
            "messageId": self.message_id(),
            "userId": user,
            "event": event,
            "timestamp": _iso(ts),
            "properties": props or {},
        }
        key = user
        if self.rng.random() >= self.spec.no_account_share:
            doc["context"] = {"groupId": account}
            key = account
        self.calls.append(Call(ts, key, doc))

    def account(self, index: int) -> None:
        spec, rng = self.spec, self.rng
        account = f"acct-{index:04d}"
        archetype = ARCHETYPES[index % len(ARCHETYPES)]
        created = spec.start + timedelta(hours=rng.randrange(0, 48))
        n_users = rng.randint(spec.min_users, spec.max_users)
        users = [f"{account}-u{j:03d}" for j in range(n_users)]
        plan = "trial" if index % 3 == 0 else "business"
        for j, user in enumerate(users):
            joined = created + timedelta(hours=rng.randrange(0, 72), minutes=j)
            role = "executive" if j == 1 else ROLES[rng.randrange(len(ROLES))]
            self.calls.append(
                Call(
                    joined,
                    account,
                    {
                        "type": "group",
                        "messageId": self.message_id(),
                        "userId": user,
                        "groupId": account,
                        "timestamp": _iso(joined),
                        "traits": {"plan": plan, "seats": n_users + 5, "createdAt": _iso(created), "name": account},
                    },
                )
            )
            self.calls.append(
                Call(
                    joined + timedelta(seconds=1),
                    user,
                    {
                        "type": "identify",
                        "messageId": self.message_id(),
                        "userId": user,
                        "timestamp": _iso(joined + timedelta(seconds=1)),
                        "traits": {"role": role, "createdAt": _iso(joined), "email": f"{user}@example.com"},
                    },
                )
            )
            self.user_journey(account, user, archetype, joined, inviter=(j == 0))

    def user_journey(self, account: str, user: str, archetype: str, joined: datetime, inviter: bool) -> None:
        spec, rng = self.spec, self.rng
        end = spec.start + timedelta(days=spec.days)
        active_days = {"activating": 0.8, "stalling": 0.5, "heavy_no_flagship": 0.95, "quiet": 0.15}[archetype]
        # the days on which this user reaches each step (None: never)
        progress = {
            "activating": (0.2, 0.5, 0.6, 0.7),
            "stalling": (0.6, 0.4, 0.05, 0.0),
            "heavy_no_flagship": (0.9, 0.9, 0.7, 0.0),
            "quiet": (0.3, 0.1, 0.0, 0.0),
        }[archetype]
        step_prob_connect, step_prob_report, step_prob_share, step_prob_ai = progress
        day = joined
        while day < end:
            if rng.random() < active_days:
                for _ in range(spec.logins_per_day * (3 if archetype == "heavy_no_flagship" else 1)):
                    self.track(day + timedelta(minutes=rng.randrange(0, 600)), user, account, "Logged In")
                if rng.random() < step_prob_connect:
                    self.track(day + timedelta(minutes=rng.randrange(600, 700)), user, account, "Data Source Connected")
                if rng.random() < step_prob_report:
                    self.track(day + timedelta(minutes=rng.randrange(700, 800)), user, account, "Report Created")
                if rng.random() < step_prob_share:
                    channel = CHANNELS[rng.randrange(len(CHANNELS))]
                    self.track(
                        day + timedelta(minutes=rng.randrange(800, 900)),
                        user,
                        account,
                        "Report Shared",
                        {"channel": channel},
                    )
                if rng.random() < step_prob_ai:
                    self.track(day + timedelta(minutes=rng.randrange(900, 1000)), user, account, "AI Edit Applied")
                if archetype == "heavy_no_flagship":
                    self.track(day + timedelta(minutes=rng.randrange(0, 1000)), user, account, "Video Uploaded")
                if inviter and rng.random() < 0.3:
                    self.track(day + timedelta(minutes=rng.randrange(0, 1000)), user, account, "Teammate Invited")
            day += timedelta(days=1)


def generate_calls(spec: WorkloadSpec) -> list[Call]:
    """Every call of the workload, in event-time order."""
    builder = _Builder(spec)
    for index in range(spec.accounts):
        builder.account(index)
    # group/identify first at equal times, so accounts know users early
    builder.calls.sort(key=lambda c: (c.ts, 0 if c.doc["type"] != "track" else 1, str(c.doc.get("messageId"))))
    return builder.calls


def generate_messages(spec: WorkloadSpec) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) Kafka messages: single calls, or batch envelopes by key."""
    calls = generate_calls(spec)
    if spec.batch_size <= 0:
        for call in calls:
            yield call.key.encode(), orjson.dumps(call.doc)
        return
    # a key's batch is sent when full or when it has waited a minute of event
    # time (as Segment's libraries flush on size or interval), so batches keep
    # the stream in event-time order to within a minute
    pending: dict[str, tuple[datetime, list[dict[str, object]]]] = {}
    for call in calls:
        while pending:
            key, (since, batch) = next(iter(pending.items()))
            if call.ts - since <= FLUSH_AFTER:
                break
            del pending[key]
            yield key.encode(), orjson.dumps({"batch": batch})
        since, batch = pending.get(call.key, (call.ts, []))
        batch.append(call.doc)
        if len(batch) >= spec.batch_size:
            pending.pop(call.key, None)
            yield call.key.encode(), orjson.dumps({"batch": batch})
        else:
            pending[call.key] = (since, batch)
    for key, (_since, batch) in pending.items():
        yield key.encode(), orjson.dumps({"batch": batch})
