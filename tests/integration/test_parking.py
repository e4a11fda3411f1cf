"""Parked calls give up on how far the whole input has been read, not on
their user's own later calls (stream.core.parking), and the directory
remembers what is parked across a restart.

The parking cluster: two input partitions, a 1 h grace and 1 h of allowed
lateness, so a parked call gives up once both partitions are read 2 h past it.
"""

from __future__ import annotations

from confluent_kafka import Producer

from tests.core.helpers import group, track
from tests.integration.conftest import PARKING_INPUT_PARTITIONS
from tests.integration.harness import Cluster, TopicReader, wait_until


def produce_to(cluster: Cluster, messages: list[tuple[int, bytes]]) -> None:
    """(input partition, value): placed by hand, to control each partition's progress."""
    producer = Producer({"bootstrap.servers": cluster.bootstrap})
    for partition, value in messages:
        producer.produce(cluster.topics["events"], value=value, partition=partition)
    assert producer.flush(30) == 0


def test_a_parked_call_gives_up_once_every_input_partition_passed_its_grace_even_across_a_restart(
    parking: Cluster,
):
    worker = parking.workers[0]
    stranger = track("pk-1", "pk-stranger", None, "Report Created", 0)  # never joins an account
    joiner = track("pk-2", "pk-joiner", None, "Report Created", 100)  # joins one later
    produce_to(parking, [(0, stranger), (1, joiner)])

    def stored_directory_keys() -> int:
        return int(worker.get("/debug/digest").json()["directory"]["keys"])

    # both users' entries and the partitions' clocks are stored: restart on them
    wait_until(lambda: stored_directory_keys() >= 3, 60, 0.5, "the parked calls to be stored")
    worker.stop()
    worker.start().wait_ready()

    with TopicReader(parking.bootstrap, parking.topics["dlq"]) as dlq:
        # every partition read to minute 121: the watermark (minus 1 h of
        # lateness) is at 61, past the stranger's grace (0 + 60), not the joiner's
        fillers = [
            track(f"pk-f{p}", "pk-busy", "pk-busy-acct", "Logged In", 121) for p in range(PARKING_INPUT_PARTITIONS)
        ]
        produce_to(parking, list(enumerate(fillers)))

        def no_account() -> list[bytes]:
            return [m.value() for m in dlq.poll() if dict(m.headers())["dlq.reason"] == b"no_account"]

        assert wait_until(no_account, 60, 0.5, "the stranger's call to give up") == [stranger]

        # the joiner's call is still parked: its group call releases it
        produce_to(parking, [(0, group("pk-joiner", "pk-acct", 130))])
        wait_until(
            lambda: (
                (r := worker.get("/accounts/pk-acct/users/pk-joiner")).status_code == 200
                and r.json()["event_counts"].get("Report Created") == 1
            ),
            60,
            0.5,
            "the joiner's parked call to reach its account",
        )
        assert no_account() == [stranger]
