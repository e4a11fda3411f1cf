from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from stream.core.partitioning import partition_for


@given(st.text(max_size=40), st.integers(min_value=1, max_value=64))
def test_same_partition_as_the_kafka_clients(key, partitions):
    """The core's partitioner must agree with the producers' (aiokafka's here)."""
    expected = DefaultPartitioner()(key.encode(), list(range(partitions)), list(range(partitions)))
    assert partition_for(key, partitions) == expected
