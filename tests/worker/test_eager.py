"""A coroutine run at once behaves as it would in its own task."""

from __future__ import annotations

import asyncio

import pytest

from stream.worker.eager import run_until_blocked


async def _add(a: int, b: int) -> int:
    return a + b


async def _wait_for(future: asyncio.Future[int], log: list[str]) -> int:
    log.append("started")
    try:
        value = await future
    except ValueError as exc:
        log.append(f"caught {exc}")
        return -1
    except asyncio.CancelledError:
        log.append("cancelled")
        raise
    log.append("resumed")
    return value * 2


def test_a_coroutine_that_never_waits_is_finished_on_the_spot() -> None:
    assert run_until_blocked(_add(2, 3)) == (5, None)


def test_an_exception_before_the_first_wait_reaches_the_caller() -> None:
    async def boom() -> None:
        raise KeyError("early")

    with pytest.raises(KeyError):
        run_until_blocked(boom())


def test_a_coroutine_that_waits_is_finished_by_awaiting_the_rest() -> None:
    async def scenario() -> None:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        log: list[str] = []
        result, rest = run_until_blocked(_wait_for(future, log))
        assert result is None and rest is not None
        assert log == ["started"]  # ran up to the wait, in the caller
        task = asyncio.ensure_future(rest)
        await asyncio.sleep(0)
        assert not task.done()
        future.set_result(21)
        assert await task == 42
        assert log == ["started", "resumed"]

    asyncio.run(scenario())


def test_the_awaited_futures_exception_is_raised_inside_the_coroutine() -> None:
    async def scenario() -> None:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        log: list[str] = []
        _, rest = run_until_blocked(_wait_for(future, log))
        assert rest is not None
        future.set_exception(ValueError("late"))
        assert await rest == -1
        assert log == ["started", "caught late"]

    asyncio.run(scenario())


def test_cancelling_the_rest_cancels_the_coroutine_and_what_it_waits_on() -> None:
    async def scenario() -> None:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        log: list[str] = []
        _, rest = run_until_blocked(_wait_for(future, log))
        assert rest is not None
        task = asyncio.ensure_future(rest)
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert log == ["started", "cancelled"]
        assert future.cancelled()

    asyncio.run(scenario())


def test_a_bare_yield_gives_the_loop_a_turn_and_carries_on() -> None:
    async def yields_twice(log: list[str]) -> str:
        await asyncio.sleep(0)
        log.append("one")
        await asyncio.sleep(0)
        log.append("two")
        return "done"

    async def scenario() -> None:
        log: list[str] = []
        _, rest = run_until_blocked(yields_twice(log))
        assert rest is not None and log == []
        assert await rest == "done"
        assert log == ["one", "two"]

    asyncio.run(scenario())
