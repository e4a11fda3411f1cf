"""The benchmark's workload: many accounts and users, a Zipf-skewed event mix.

`stream.workload` walks each account through an archetype and keeps every call
in memory as a dict: right for the demo and the tests (a few thousand calls),
too slow and too big at 10k accounts / 100k users. This generator scales:
calls are drawn as small tuples, sorted by event time, and serialized as they
are emitted.

The shape, deterministic for a given spec:

* users are spread over accounts with a Zipf skew (a few large accounts, a long
  tail of small ones); each user's ``group`` and ``identify`` calls come when it
  joins, in the first 40% of the period;
* track calls are drawn per user with a Zipf skew of activity (heavy users and
  quiet ones) at any time after the user joined;
* the event mix is Zipf-skewed too: logins dominate, the valuable steps of the
  demo's criteria (``deploy/criteria.yaml``) are rarer, and a tail of events no
  criterion counts;
* 5% of track calls name no account (resolved from the user's group call);
* every call has its own millisecond (event times are unique).

Single-call messages are keyed by account (else by user), as producers do;
batch envelopes hold consecutive calls (up to ``batch_size``) from one of a few
sources, as a server-side Segment library sends them.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

#: (event name, properties choices): most common first (the Zipf rank).
EVENTS: tuple[tuple[str, tuple[dict[str, object], ...]], ...] = (
    ("Logged In", ({},)),
    ("Dashboard Viewed", ({"dashboard": "home"}, {"dashboard": "sales"}, {"dashboard": "ops"})),
    ("Report Viewed", ({},)),
    ("Search Performed", ({"results": 3}, {"results": 0}, {"results": 12})),
    ("Report Created", ({"template": "blank"}, {"template": "weekly"})),
    ("Filter Applied", ({},)),
    ("Report Shared", ({"channel": "email"}, {"channel": "slack"}, {"channel": "link"})),
    ("Comment Added", ({},)),
    ("Video Uploaded", ({"seconds": 42},)),
    ("Export Downloaded", ({"format": "csv"}, {"format": "pdf"})),
    ("AI Edit Applied", ({},)),
    ("Data Source Connected", ({"source": "postgres"}, {"source": "salesforce"}, {"source": "sheets"})),
    ("Teammate Invited", ({},)),
    ("Settings Changed", ({},)),
    ("Alert Configured", ({},)),
    ("Subscription Started", ({"plan": "business"},)),
)
ROLES = ("member", "member", "member", "member", "manager", "executive", "admin")
GROUP, IDENTIFY, TRACK = 0, 1, 2


@dataclass(frozen=True, slots=True)
class BenchSpec:
    accounts: int = 10_000
    users: int = 100_000
    #: Track calls over the period (group and identify calls come on top: 2 per user).
    tracks: int = 200_000
    days: int = 14
    seed: int = 11
    start: datetime = datetime(2026, 10, 1, tzinfo=UTC)
    #: Zipf exponents: users per account, activity per user, the event mix.
    account_size_skew: float = 0.7
    user_activity_skew: float = 0.7
    event_skew: float = 1.1
    no_account_share: float = 0.05
    #: Calls per batch envelope, and how many sources send them.
    batch_size: int = 100
    batch_sources: int = 32

    @property
    def calls(self) -> int:
        return 2 * self.users + self.tracks


#: The size `--small` runs use (CI keeps the commands working; figures meaningless).
SMALL = BenchSpec(accounts=200, users=2_000, tracks=6_000, days=7)


def _zipf_cum(n: int, s: float) -> list[float]:
    return list(itertools.accumulate(1.0 / (rank**s) for rank in range(1, n + 1)))


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class BenchWorkload:
    """The calls of a :class:`BenchSpec`, drawn once, serialized on demand."""

    def __init__(self, spec: BenchSpec) -> None:
        self.spec = spec
        rng = random.Random(spec.seed)
        start_ms = int(spec.start.timestamp() * 1000)
        period = spec.days * 86_400_000
        # users -> accounts: every account has one user, the rest by a Zipf draw
        # over a shuffled ranking (large accounts anywhere in the id space)
        ranking = list(range(spec.accounts))
        rng.shuffle(ranking)
        extra = rng.choices(
            ranking, cum_weights=_zipf_cum(spec.accounts, spec.account_size_skew), k=spec.users - spec.accounts
        )
        self.user_account = list(range(spec.accounts)) + extra
        # each user joins in the first 40% of the period; its account exists from its first user
        self.joined = [start_ms + rng.randrange(int(period * 0.4)) for _ in range(spec.users)]
        created: dict[int, int] = {}
        for u, a in enumerate(self.user_account):
            created[a] = min(created.get(a, self.joined[u]), self.joined[u])
        self.account_created = created
        # the calls, as (ts, kind, user, detail); timestamps made unique below
        calls: list[tuple[int, int, int, int]] = []
        for u in range(spec.users):
            calls.append((self.joined[u], GROUP, u, 0))
            calls.append((self.joined[u] + 1000, IDENTIFY, u, 0))
        activity = list(range(spec.users))
        rng.shuffle(activity)
        actors = rng.choices(activity, cum_weights=_zipf_cum(spec.users, spec.user_activity_skew), k=spec.tracks)
        event_cum = _zipf_cum(len(EVENTS), spec.event_skew)
        end_ms = start_ms + period
        for u in actors:
            lo = self.joined[u] + 2000
            ts = lo + rng.randrange(max(1, end_ms - lo))
            event = bisect.bisect_left(event_cum, rng.random() * event_cum[-1])
            calls.append((ts, TRACK, u, event))
        calls.sort()
        # unique, increasing milliseconds (ties broken in sorted order)
        last = 0
        for i, (ts, kind, u, detail) in enumerate(calls):
            last = ts if ts > last else last + 1
            calls[i] = (last, kind, u, detail)
        self.calls = calls
        self.rng_seed = rng.random()

    def account_id(self, u: int) -> str:
        return f"acct-{self.user_account[u]:05d}"

    def user_id(self, u: int) -> str:
        return f"user-{u:06d}"

    def docs(self) -> Iterator[tuple[str, dict[str, object]]]:
        """(key, Segment call) in event-time order."""
        spec = self.spec
        rng = random.Random(self.rng_seed)
        for n, (ts, kind, u, detail) in enumerate(self.calls):
            account, user = self.account_id(u), self.user_id(u)
            doc: dict[str, object] = {"messageId": f"b{spec.seed}-{n:09d}", "userId": user, "timestamp": _iso(ts)}
            key = account
            if kind == GROUP:
                a = self.user_account[u]
                doc.update(
                    type="group",
                    groupId=account,
                    traits={
                        "name": f"Account {a}",
                        "plan": "trial" if a % 3 == 0 else "business",
                        "createdAt": _iso(self.account_created[a]),
                    },
                )
            elif kind == IDENTIFY:
                doc.update(
                    type="identify",
                    traits={
                        "role": ROLES[u % len(ROLES)],
                        "createdAt": _iso(self.joined[u]),
                        "email": f"{user}@example.com",
                    },
                )
                key = user
            else:
                name, choices = EVENTS[detail]
                doc.update(type="track", event=name, properties=choices[n % len(choices)])
                if rng.random() >= spec.no_account_share:
                    doc["context"] = {"groupId": account}
                else:
                    key = user
            yield key, doc

    def single_messages(self) -> Iterator[tuple[bytes, bytes]]:
        """One call per message, keyed by account (else by user)."""
        for key, doc in self.docs():
            yield key.encode(), orjson.dumps(doc)

    def batch_messages(self) -> Iterator[tuple[bytes, bytes]]:
        """Segment batch envelopes of consecutive calls, keyed by source."""
        size = self.spec.batch_size
        docs = self.docs()
        for n in itertools.count():
            chunk = [doc for _key, doc in itertools.islice(docs, size)]
            if not chunk:
                return
            yield f"source-{n % self.spec.batch_sources:02d}".encode(), orjson.dumps({"batch": chunk})


def live_calls(spec: BenchSpec, offset: int) -> Iterator[tuple[bytes, dict[str, object]]]:
    """An endless stream of new accounts signing up and using the product,
    for the latency run: the caller stamps each call's ``timestamp`` with the
    wall clock as it publishes it. Account and user ids start past the
    workload's, at ``offset``, so every run sees new accounts reach milestones."""
    rng = random.Random(spec.seed + offset)
    event_cum = _zipf_cum(len(EVENTS), spec.event_skew)
    n = 0
    for a in itertools.count(offset):
        account = f"live-{a:06d}"
        users = [f"{account}-u{j}" for j in range(rng.randint(3, 12))]
        for j, user in enumerate(users):
            n += 1
            yield (
                account.encode(),
                {
                    "type": "group",
                    "messageId": f"live-{a}-{n}",
                    "userId": user,
                    "groupId": account,
                    "traits": {"name": account, "plan": "trial"},
                },
            )
            n += 1
            yield (
                user.encode(),
                {
                    "type": "identify",
                    "messageId": f"live-{a}-{n}",
                    "userId": user,
                    "traits": {"role": "executive" if j == 1 else "member"},
                },
            )
        for _ in range(len(users) * 8):
            user = users[rng.randrange(len(users))]
            name, choices = EVENTS[bisect.bisect_left(event_cum, rng.random() * event_cum[-1])]
            n += 1
            yield (
                account.encode(),
                {
                    "type": "track",
                    "messageId": f"live-{a}-{n}",
                    "userId": user,
                    "event": name,
                    "properties": choices[n % len(choices)],
                    "context": {"groupId": account},
                },
            )
