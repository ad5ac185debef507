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

# A cancelled task ends at its next await; one inside a Redis call waits for its answer, bounded
# by the clients' 3 s socket timeout.
CANCEL_WAIT_S = 5.0
CANCEL_ROUNDS = 3


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

    async def cancel(
        self, *tasks: asyncio.Task[Any] | None, within: float = CANCEL_WAIT_S
    ) -> list[str]:
        """Cancel these tasks (of this registry) and wait until they have ended, at most
        `within` seconds a round; return the names of those still running after the last."""
        running = {task for task in tasks if task is not None and not task.done()}
        for _ in range(CANCEL_ROUNDS):
            if not running:
                return []
            # A task can lose a cancellation (redis-py's asyncio client, on Python 3.11, may
            # finish a command normally in a task cancelled during it): each round cancels again.
            for task in running:
                task.cancel()
            ended, running = await asyncio.wait(running, timeout=within)
            for task in ended:  # what they raised was theirs to report; read it, as gather did
                if not task.cancelled():
                    task.exception()
        stuck = sorted(task.get_name() for task in running)
        log.error("tasks did not end when cancelled", extra={"tasks": stuck})
        return stuck

    async def close(self) -> list[str]:
        """Cancel every task still running, wait for them, and return their names."""
        self.closed = True
        left = sorted(self._tasks, key=lambda task: task.get_name())
        if left:
            log.info("cancelling tasks", extra={"tasks": [task.get_name() for task in left]})
        await self.cancel(*left)
        return [task.get_name() for task in left]
