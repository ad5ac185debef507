"""The one shutdown sequence, in uvicorn's order: stop accepting, drain to a deadline, stop
sending, close sessions with 1001, close Redis, close the IVS client, cancel what is left.
Each phase runs once, whoever asks first (SIGTERM in `serve`, or aiohttp's shutdown hooks)."""

from __future__ import annotations

import logging
from enum import IntEnum
from typing import Protocol

log = logging.getLogger(__name__)


class Phase(IntEnum):
    """The steps of shutting down, in the order they run."""

    STOP_ACCEPTING = 1  # /readyz 503, new cues 503 shutting_down
    DRAIN = 2  # keep sending within the limits, up to drain_timeout
    STOP_SENDING = 3  # stop reading stream events; hand partitions back (Redis); cancel calls;
    # drop the rest (`shutdown`)
    CLOSE_SESSIONS = 4  # flush receipts, then close each WebSocket with 1001
    CLOSE_REDIS = 5
    CLOSE_IVS = 6
    CANCEL_TASKS = 7  # anything still running is cancelled and named in the log


class Sending(Protocol):
    """The owner of sending (`sending.engine.Engine`)."""

    def stop_accepting(self) -> None:
        """From now on, new cues are refused with 503 and /readyz is 503."""

    def queued(self) -> int:
        """Cues held and not yet sent."""

    async def drain(self, seconds: float) -> int:
        """Send what is held for up to `seconds`; return how many remain."""

    async def stop(self) -> int:
        """Stop sending and drop the rest with reason `shutdown`; return how many."""


class Sessions(Protocol):
    """The open WebSocket sessions (`ingress.ws_session.WsHub`)."""

    async def close_all(self) -> None:
        """Flush receipts, then close each session with 1001."""


class Closeable(Protocol):
    """A client or registry to close (the IVS client, the task registry)."""

    async def close(self) -> object:
        """Release what it holds."""


class Distributed(Protocol):
    """Distributed mode's part in shutting down."""

    async def hand_back(self) -> None:
        """Stop reading and give the partitions back; their cues stay in Redis."""

    async def close(self) -> None:
        """Close the receipt relay and the Redis connections."""


class Shutdown:
    """Runs the phases in order, each once."""

    def __init__(
        self,
        *,
        engine: Sending,
        hub: Sessions,
        tasks: Closeable,
        events: Closeable | None = None,
        distributed: Distributed | None = None,
        ivs_client: Closeable | None = None,
    ) -> None:
        self._engine = engine
        self._hub = hub
        self._tasks = tasks
        self._events = events
        self._distributed = distributed
        self._ivs_client = ivs_client
        self.done = 0  # the last phase started

    def __repr__(self) -> str:
        return f"<Shutdown done={self.done}>"

    async def run(
        self, *, through: Phase = Phase.CANCEL_TASKS, drain_s: float | None = None
    ) -> None:
        """Run the phases not run yet, up to `through`; the drain waits up to `drain_s` seconds
        (None: no drain, as when the app is stopped without a signal)."""
        for phase in Phase:
            if phase <= self.done or phase > through:
                continue
            self.done = phase
            await self._run(phase, drain_s)

    async def _run(self, phase: Phase, drain_s: float | None) -> None:
        engine = self._engine
        if phase is Phase.STOP_ACCEPTING:
            engine.stop_accepting()
        elif phase is Phase.DRAIN and drain_s is not None:
            log.info("draining", extra={"queued": engine.queued(), "deadline_s": drain_s})
            left = await engine.drain(drain_s)
            log.info("drained", extra={"left": left})
        elif phase is Phase.STOP_SENDING:
            if self._events is not None:
                await self._events.close()
            if self._distributed is not None:
                await self._distributed.hand_back()
            await engine.stop()
        elif phase is Phase.CLOSE_SESSIONS:
            await self._hub.close_all()
        elif phase is Phase.CLOSE_REDIS and self._distributed is not None:
            await self._distributed.close()
        elif phase is Phase.CLOSE_IVS and self._ivs_client is not None:
            await self._ivs_client.close()
        elif phase is Phase.CANCEL_TASKS:
            await self._tasks.close()
