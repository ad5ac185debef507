"""The one owner of the process's long-lived tasks, each with a name (as aiojobs' `Scheduler`
owns its jobs): nothing is fire-and-forget, and shutdown can say what it cancelled."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class TaskRegistry:
    """Spawns named tasks, keeps them until they end, cancels what is left at close."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self.closed = False

    def __repr__(self) -> str:
        names = Counter(task.get_name() for task in self._tasks)
        shown = " ".join(f"{name}={count}" for name, count in sorted(names.items()))
        return f"<TaskRegistry tasks={len(self._tasks)}{' ' + shown if shown else ''}>"

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
        """Start `coro` as a task named `name`, owned here until it ends."""
        if self.closed:
            coro.close()
            raise RuntimeError(f"cannot start {name!r}: the task registry is closed")
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def cancel(self, *tasks: asyncio.Task[Any] | None) -> None:
        """Cancel these tasks (of this registry) and wait until they have ended."""
        running = [task for task in tasks if task is not None]
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    async def close(self) -> list[str]:
        """Cancel every task still running, wait for them, and return their names."""
        self.closed = True
        left = sorted(self._tasks, key=lambda task: task.get_name())
        if left:
            log.info("cancelling tasks", extra={"tasks": [task.get_name() for task in left]})
        await self.cancel(*left)
        return [task.get_name() for task in left]
