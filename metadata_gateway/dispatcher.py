"""The async shell around one `BudgetScheduler`: sleep until there is work, send, report back."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from metadata_gateway.ivs import IvsCallError, MetadataSink, Outcome
from metadata_gateway.scheduler import BudgetScheduler, Dispatch

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
        gate: CallGate | None = None,
    ) -> None:
        self.scheduler = scheduler
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
        self._loop_task = asyncio.create_task(self._run(), name=f"dispatcher-{self._region}")

    def wake(self) -> None:
        """Ask the loop to look again now (new cues arrived)."""
        self._wake.set()

    @property
    def idle(self) -> bool:
        """True when no call is in flight."""
        return not self._calls

    async def close(self) -> None:
        """Stop the loop and cancel calls still in flight (their cues stay with the scheduler)."""
        tasks = [*self._calls]
        if self._loop_task is not None:
            tasks.append(self._loop_task)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            for dispatch in self.scheduler.step(loop.time()):
                task = asyncio.create_task(self._send(dispatch), name="put-metadata")
                self._calls.add(task)
                task.add_done_callback(self._calls.discard)
            wake_at = self.scheduler.next_wakeup(loop.time())
            self._wake.clear()
            timer = None if wake_at == float("inf") else loop.call_at(wake_at, self._wake.set)
            try:
                await self._wake.wait()
            finally:
                if timer is not None:
                    timer.cancel()

    async def _send(self, dispatch: Dispatch) -> None:
        if self._gate is None:
            await self._call(dispatch)
            return
        loop = asyncio.get_running_loop()
        try:
            ticket, wait = await self._gate.acquire(
                dispatch.channel.arn.arn, dispatch.channel.arn.budget
            )
        except asyncio.CancelledError:
            self.scheduler.defer(dispatch, loop.time(), loop.time())
            raise
        except Exception:
            # A gate that cannot answer proves no budget: hold the cues, never send unchecked.
            log.exception("call gate failed", extra={"channel": dispatch.channel.arn.arn})
            ticket, wait = None, GATE_ERROR_RETRY_S
        if ticket is None:
            # Not now: another process spent the shared budget. Not a failure of the channel.
            self.scheduler.defer(dispatch, loop.time() + wait, loop.time())
            self._wake.set()
            return
        try:
            await self._call(dispatch)
        finally:
            await asyncio.shield(self._gate.release(ticket))

    async def _call(self, dispatch: Dispatch) -> None:
        loop = asyncio.get_running_loop()
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
            self.scheduler.complete(dispatch, Outcome.TIMEOUT, loop.time(), "cancelled")
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
        self.scheduler.complete(dispatch, outcome, loop.time(), message)
        self._wake.set()
