"""The task registry: named tasks, and cancellation that ends even when a task loses one."""

from __future__ import annotations

import asyncio
import contextlib

from metadata_gateway.running.tasks import TaskRegistry


async def _loses_first_cancel(started: asyncio.Event) -> None:
    started.set()
    # What a client that drops a cancellation does: the loop goes on.
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(3600)
    await asyncio.sleep(3600)


async def _ignores_cancels(started: asyncio.Event, released: asyncio.Event) -> None:
    started.set()
    while not released.is_set():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(3600)


async def test_cancel_ends_a_task_that_lost_the_first_cancellation() -> None:
    """A task that swallows one cancellation is cancelled again and ends; none is reported."""
    tasks = TaskRegistry()
    started = asyncio.Event()
    task = tasks.spawn(_loses_first_cancel(started), name="forgetful")
    await started.wait()
    assert await tasks.cancel(task, within=0.05) == []
    assert task.cancelled()
    assert len(tasks) == 0


async def test_cancel_gives_up_on_a_task_that_never_ends_and_names_it() -> None:
    """Cancelling returns after its rounds even if a task ignores every cancellation, and names
    the task left running."""
    tasks = TaskRegistry()
    started, released = asyncio.Event(), asyncio.Event()
    task = tasks.spawn(_ignores_cancels(started, released), name="stubborn")
    await started.wait()
    assert await tasks.cancel(task, within=0.02) == ["stubborn"]
    assert not task.done()
    released.set()
    assert await tasks.cancel(task, within=1.0) == []


async def test_close_cancels_every_task_and_returns_their_names() -> None:
    """close() cancels what is still running, says which, and refuses new tasks."""
    tasks = TaskRegistry()
    for name in ("b", "a"):
        tasks.spawn(asyncio.sleep(3600), name=name)
    assert await tasks.close() == ["a", "b"]
    assert len(tasks) == 0
