"""Read-only views of the worker's tables, for the HTTP views and the gauges.

They read each partition's RocksDB directly, never through a table write, so
they are safe outside stream iteration (where Faust's rocksdb store cannot
write, faust-streaming #497).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import faust

from stream.core.criteria import Criteria
from stream.core.kpis import kpi_partial, merge_partials
from stream.core.routing import VISITOR_PREFIX, DirectoryEntry, visitor_counts
from stream.core.state import AccountState
from stream.settings import Settings

#: Key of the per-partition criteria record in the accounts table. Table reads
#: and writes inside an event use that event's partition, so each partition
#: keeps its own copy, switched at the point its control message arrives.
CRITERIA_KEY = b"\x00criteria"
#: The partition's event-time clock (lanes, watermark, last sweep), same scheme.
CLOCK_KEY = b"\x00clock"


class TableReads:
    """Mixed into the worker, which provides the tables and clocks."""

    app: faust.App
    settings: Settings
    accounts: faust.Table
    users: faust.Table
    directory: faust.Table
    #: account id -> decoded state, the newest the worker has (see ActivationWorker)
    account_cache: Mapping[str, AccountState]

    def clock_for(self, partition: int) -> int:
        raise NotImplementedError

    def criteria_of_version(self, version: int) -> Criteria:
        raise NotImplementedError

    def table_digests(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for name, table in (("accounts", self.accounts), ("users", self.users), ("directory", self.directory)):
            h = hashlib.sha256()
            count = 0
            for key, value in sorted(table.data.items()):
                h.update(len(key).to_bytes(4, "big") + key + len(value).to_bytes(4, "big") + value)
                count += 1
            out[name] = {"keys": count, "sha256": h.hexdigest()}
        return out

    def owned_partitions(self, topic: str) -> list[int]:
        """Partitions of ``topic`` this worker actively owns right now."""
        return sorted(tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == topic)

    def partition_states(self, partition: int) -> list[AccountState]:
        """Every account of a partition, read straight from its store (no
        table write, so safe outside stream iteration).

        An account the worker holds decoded is taken as it is (a refresh of the
        gauges decoded every account of the worker otherwise): it is the newest
        state, the running batch's calls applied, perhaps not stored yet."""
        out = []
        cached = self.account_cache
        for key in self._partition_account_keys(partition):
            account_id = key.decode()
            state = cached.get(account_id)  # a plain read: the LRU order is not touched
            if state is None:
                raw = self.accounts.get_in(partition, key)
                if raw is None:
                    continue
                state = AccountState.from_bytes(account_id, raw)
            out.append(state)
        return out

    def active_key_count(self, table: faust.Table) -> int:
        """Keys of a table in the partitions this worker actively owns (RocksDB
        keys, counted without decoding them)."""
        offset_key = table.data.offset_key
        return sum(
            sum(1 for key in db.keys() if key != offset_key)  # noqa: SIM118 - a RocksDB
            for db in table.data._dbs_for_actives()
        )

    def visitor_counts(self) -> tuple[int, int]:
        """Visitors and converted visitors on the directory partitions this
        worker owns (a scan of the visitor keys: exact, O(visitors))."""
        prefix = VISITOR_PREFIX.encode()
        entries = []
        for partition in self.owned_partitions(self.settings.user_topic):
            db = self.directory.data._db_for_partition(partition)
            for key in db.keys():  # noqa: SIM118 - a RocksDB
                if key.startswith(prefix):
                    entries.append(DirectoryEntry.from_bytes(db.get(key)))
        return visitor_counts(entries)

    def kpi_partials(self, by_partition: dict[int, list[AccountState]] | None = None) -> list[dict[str, Any]]:
        """One KPI partial per owned account partition, each as of that
        partition's newest event time, and one with this worker's visitors
        (``by_partition``: the partitions' states, when already read)."""
        if by_partition is None:
            owned = self.owned_partitions(self.settings.account_topic)
            by_partition = {p: self.partition_states(p) for p in owned}
        visitors, converted = self.visitor_counts()
        partials = [{**merge_partials([]), "visitors": visitors, "converted_visitors": converted}]
        for partition, states in by_partition.items():
            if not states:
                continue
            criteria = self.criteria_of_version(max(s.criteria_version for s in states))
            partials.append(kpi_partial(states, criteria, self.clock_for(partition)))
        return partials

    def _partition_account_keys(self, partition: int) -> list[bytes]:
        return sorted(self.accounts.keys_in(partition) - {CRITERIA_KEY, CLOCK_KEY})
