"""Running a coroutine at once, without a task, when it never has to wait.

Faust's fetch loop hands each message to the agents' queues through
``wait_first(callback(message), suspend_flow.wait())``: two new tasks per
message, two more for the consumer's own stop events, an ``asyncio.wait`` and
the cancellation of the losers. The hand-over itself almost never waits (it
waits only when an agent's queue is full or the producer is backed up), so that
machinery was ~12% of a worker's CPU time (py-spy, single-call messages).

:func:`run_until_blocked` runs the coroutine in the caller up to its first
wait. When it finishes there, nothing else is needed. When it does wait, the
rest of it is returned as an awaitable that behaves like the task asyncio would
have made (results, exceptions and cancellation go through to the coroutine),
so the caller can still race it against a stop event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_until_blocked(coro: Coroutine[Any, Any, T]) -> tuple[T | None, Awaitable[T] | None]:
    """``(result, None)`` if ``coro`` finished without waiting, else
    ``(None, rest)``: await ``rest`` (or wrap it in a task) to finish it.
    An exception raised before the first wait propagates here."""
    try:
        waiting_on = coro.send(None)
    except StopIteration as done:
        return done.value, None
    return None, _resume(coro, waiting_on)


async def _resume(coro: Coroutine[Any, Any, T], waiting_on: Any) -> T:
    """Drive ``coro`` on from where it yielded, as a task's steps would: wait
    for what it waits on, then send it the outcome (or throw the exception,
    cancellation included, into it)."""
    while True:
        try:
            if waiting_on is None:  # a bare yield (asyncio.sleep(0)): give the loop one turn
                await asyncio.sleep(0)
            else:
                waiting_on._asyncio_future_blocking = False
                await waiting_on
        except BaseException as exc:
            step, arg = coro.throw, exc
        else:
            step, arg = coro.send, None
        try:
            waiting_on = step(arg)  # type: ignore[operator]
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
