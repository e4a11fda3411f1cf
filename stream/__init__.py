"""Kafka-native activation and engagement processor (Faust workers over Segment events)."""

from stream import compiled_core

compiled_core.check()
