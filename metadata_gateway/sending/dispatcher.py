"""The async shell around one `BudgetScheduler`: sleep until there is work, send, report back."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from metadata_gateway.core.ivs import IvsCallError, MetadataSink, Outcome
from metadata_gateway.core.scheduler import BudgetScheduler, Dispatch
from metadata_gateway.running.tasks import TaskRegistry

log = logging.getLogger(__name__)
GATE_ERROR_RETRY_S = 0.5  # a failing call gate is asked again after this


class CallGate(Protocol):
    """A budget shared beyond this process, asked before each call and told when it ended."""

    async def acquire(self, channel_arn: str, budget: tuple[str, str]) -> tuple[object, float]:
        """Admit a call now: return a ticket and 0, or None and the seconds to wait first."""

    async def release(self, ticket: object) -> None:
        """The admitted call was answered (or failed, or was abandoned)."""


class Dispatcher:
    """Runs one budget's scheduler: one loop task, plus one task per call in flight."""

    def __init__(
        self,
        scheduler: BudgetScheduler,
        sink: MetadataSink,
        *,
        region: str,
        timeout: float,
        clock: Callable[[], float],
        tasks: TaskRegistry,
        gate: CallGate | None = None,
    ) -> None:
        self.scheduler = scheduler
        self._clock = clock
        self._tasks = tasks
        self._gate = gate
        self._sink = sink
        self._region = region
        self._timeout = timeout
        self._wake = asyncio.Event()
        self._calls: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<Dispatcher {self._region} calls={len(self._calls)} {self.scheduler!r}>"

    def start(self) -> None:
        """Start the scheduling loop."""
        self._loop_task = self._tasks.spawn(self._run(), name=f"dispatcher-{self._region}")

    def wake(self) -> None:
        """Ask the loop to look again now (new cues arrived)."""
        self._wake.set()

    @property
    def idle(self) -> bool:
        """True when no call is in flight."""
        return not self._calls

    async def close(self) -> None:
        """Stop the loop and cancel calls still in flight (their cues stay with the scheduler)."""
        await self._tasks.cancel(*self._calls, self._loop_task)

    async def _run(self) -> None:
        loop, clock = asyncio.get_running_loop(), self._clock
        while True:
            for dispatch in self.scheduler.step(clock()):
                task = self._tasks.spawn(self._send(dispatch), name="put-metadata")
                self._calls.add(task)
                task.add_done_callback(self._calls.discard)
            now = clock()
            wake_at = self.scheduler.next_wakeup(now)
            self._wake.clear()
            # call_later, not call_at: the wake-up is in the injected clock's time.
            timer = (
                None
                if wake_at == float("inf")
                else loop.call_later(max(0.0, wake_at - now), self._wake.set)
            )
            try:
                await self._wake.wait()
            finally:
                if timer is not None:
                    timer.cancel()

    async def _send(self, dispatch: Dispatch) -> None:
        if self._gate is None:
            await self._call(dispatch)
            return
        clock = self._clock
        try:
            ticket, wait = await self._gate.acquire(
                dispatch.channel.arn.arn, dispatch.channel.arn.budget
            )
        except asyncio.CancelledError:
            self.scheduler.defer(dispatch, clock(), clock())
            raise
        except Exception:
            # A gate that cannot answer proves no budget: hold the cues, never send unchecked.
            log.exception("call gate failed", extra={"channel": dispatch.channel.arn.arn})
            ticket, wait = None, GATE_ERROR_RETRY_S
        if ticket is None:
            # Not now: another process spent the shared budget. Not a failure of the channel.
            self.scheduler.defer(dispatch, clock() + wait, clock())
            self._wake.set()
            return
        try:
            await self._call(dispatch)
        finally:
            await asyncio.shield(self._gate.release(ticket))

    async def _call(self, dispatch: Dispatch) -> None:
        clock = self._clock
        outcome, message = Outcome.OK, ""
        try:
            async with asyncio.timeout(self._timeout):
                await self._sink.put_metadata(
                    region=self._region,
                    channel_arn=dispatch.channel.arn.arn,
                    metadata=dispatch.batch.payload.decode(),
                )
        except IvsCallError as exc:
            outcome, message = exc.outcome, exc.message
        except TimeoutError:
            outcome, message = Outcome.TIMEOUT, f"no answer within {self._timeout:g} s"
        except asyncio.CancelledError:
            # Shutdown: the call may or may not have reached IVS; give the cues back.
            self.scheduler.complete(dispatch, Outcome.TIMEOUT, clock(), "cancelled")
            raise
        except Exception as exc:
            # A bug or a client-side refusal (e.g. botocore rejecting a region): the call is
            # settled all the same, or its channel would stay in flight for ever.
            log.exception("PutMetadata raised", extra={"channel": dispatch.channel.arn.arn})
            outcome, message = Outcome.CLIENT_ERROR, f"{type(exc).__name__}: {exc}"

        if outcome is not Outcome.OK:
            log.warning(
                "PutMetadata failed",
                extra={
                    "channel": dispatch.channel.arn.arn,
                    "outcome": outcome.value,
                    "detail": message,
                    "cues": len(dispatch.batch.cues),
                },
            )
        self.scheduler.complete(dispatch, outcome, clock(), message)
        self._wake.set()
