"""The asyncio owner of sending: one dispatcher per account budget, the start-up hold, the drain,
and the stop; one clock, handed to everything that reads time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from metadata_gateway.core.events import DropReason
from metadata_gateway.core.gateway import Gateway
from metadata_gateway.core.ivs import MetadataSink
from metadata_gateway.running.tasks import TaskRegistry
from metadata_gateway.sending.dispatcher import CallGate, Dispatcher

log = logging.getLogger(__name__)


class Engine:
    """Runs the gateway's budget schedulers through `sink`; a `QueueObserver` of the gateway."""

    def __init__(
        self,
        gateway: Gateway,
        *,
        sink: MetadataSink,
        tasks: TaskRegistry,
        clock: Callable[[], float],
        gate: CallGate | None = None,
    ) -> None:
        self.gateway = gateway
        self.clock = clock
        self._sink = sink
        self._tasks = tasks
        self._gate = gate
        self.dispatchers: dict[tuple[str, str], Dispatcher] = {}
        self._started = False
        self._hold_until = 0.0
        self._empty = asyncio.Event()
        gateway.observer = self

    def __repr__(self) -> str:
        return f"<Engine dispatchers={len(self.dispatchers)} {self.gateway!r}>"

    def start(self) -> None:
        """Start a dispatcher for every account budget known now, and for each new one later."""
        self._started = True
        self._hold_until = self.clock() + self.gateway.settings.startup_hold
        for budget in self.gateway.schedulers:
            self.budget_added(budget)

    def budget_added(self, budget: tuple[str, str]) -> None:
        """Start the dispatcher of a new budget (once started)."""
        if not self._started or budget in self.dispatchers:
            return
        settings = self.gateway.settings
        scheduler = self.gateway.schedulers[budget]
        scheduler.limiter.hold(self._hold_until)
        dispatcher = Dispatcher(
            scheduler,
            self._sink,
            region=budget[0],
            timeout=settings.ivs_timeout,
            clock=self.clock,
            tasks=self._tasks,
            gate=self._gate,
        )
        self.dispatchers[budget] = dispatcher
        dispatcher.start()

    def work(self, budget: tuple[str, str]) -> None:
        """Wake the budget's dispatcher: cues arrived."""
        dispatcher = self.dispatchers.get(budget)
        if dispatcher is not None:
            dispatcher.wake()

    def emptied(self) -> None:
        """The last held cue left: a drain may end."""
        self._empty.set()

    def stop_accepting(self) -> None:
        """Refuse new cues from now on (503 shutting_down, /readyz 503)."""
        self.gateway.draining = True

    def queued(self) -> int:
        """Cues held and not yet sent or dropped."""
        return self.gateway.total_cues

    async def drain(self, seconds: float) -> int:
        """Refuse new cues, send what is queued for up to `seconds`; return how many remain."""
        self.gateway.draining = True
        if self.gateway.total_cues:
            self._empty.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self._empty.wait()
        return self.gateway.total_cues

    async def stop(self) -> int:
        """Stop sending (calls in flight are cancelled, their cues given back), then drop the cues
        still held with reason `shutdown`, logged; return how many."""
        self.gateway.draining = True
        self._started = False
        dispatchers = list(self.dispatchers.values())
        self.dispatchers.clear()
        for dispatcher in dispatchers:
            await dispatcher.close()
        dropped = self.gateway.drop_all(DropReason.SHUTDOWN, self.clock())
        if dropped:
            log.warning(
                "dropped cues that could not be sent before shutdown", extra={"cues": dropped}
            )
        return dropped
