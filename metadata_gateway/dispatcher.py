"""The async shell around one `BudgetScheduler`: sleep until there is work, send, report back."""

from __future__ import annotations

import asyncio
import logging

from metadata_gateway.ivs import IvsCallError, MetadataSink, Outcome
from metadata_gateway.scheduler import BudgetScheduler, Dispatch

log = logging.getLogger(__name__)


class Dispatcher:
    """Runs one budget's scheduler: one loop task, plus one task per call in flight."""

    def __init__(
        self, scheduler: BudgetScheduler, sink: MetadataSink, *, region: str, timeout: float
    ) -> None:
        self.scheduler = scheduler
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
