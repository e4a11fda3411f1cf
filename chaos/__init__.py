"""Fault-injection scenarios run against real workers on the embedded broker.

Each scenario publishes a generated workload while it kills, freezes, moves or
floods the pipeline, then compares the final state and the output topics with
the offline run of the same core (`stream verify`). ``python -m chaos`` runs
all of them and prints one table; the tests run a short version of each.
"""
