"""A stream of cues over the gateway's WebSocket that outlives dropped connections and restarts."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from types import TracebackType
from typing import Any

import aiohttp

from metadata_gateway.client.connect import connect
from metadata_gateway.client.errors import GatewayError, GatewayUnavailable
from metadata_gateway.client.frames import Frame
from metadata_gateway.client.ledger import (
    DEFAULT_MAX_FRAME_BYTES,
    Effect,
    Emit,
    Reject,
    Resolve,
    StreamLedger,
    Warn,
)
from metadata_gateway.client.results import (
    Cancelled,
    CueJson,
    CueResult,
    Receipt,
    check_batch,
    with_id,
)
from metadata_gateway.client.retry import Backoff, RetryPolicy

log = logging.getLogger("metadata_gateway.client")

__all__ = ["DEFAULT_MAX_FRAME_BYTES", "CueStream"]


class CueStream:
    """Cues and their receipts over a WebSocket that reconnects when it drops.

    Every cue carries an id, and the stream keeps each cue until its receipt arrives. When the
    connection drops, or the gateway closes it with 1001 to restart, the stream reconnects with
    exponential backoff (with jitter, for up to `reconnect_deadline` seconds) and sends again,
    with the same ids:

    - cues sent but not yet acknowledged: the `send` still waiting gets the new connection's ack;
    - cues acknowledged but not yet receipted, whose receipts left with the old connection.
      A gateway that remembers the id answers `duplicate`: with `delivered: true` the stream
      makes the `sent` receipt itself, with `at=None`; with `delivered: false` the receipt comes
      on the new connection. A new gateway process remembers nothing and queues the cue again.

    So no cue is lost, and none is sent twice while the gateway keeps its idempotency memory
    (10 minutes, within one process). Across a restart, the gateway's graceful shutdown is what
    prevents duplicates: it sends what it holds, with receipts, before it closes with 1001, and
    the stream reads until that close frame. A connection that breaks without one can leave a
    cue the old process delivered whose receipt never came: that cue is delivered twice.

    A nack `queue_full` or `client_rate_limited` is retried after its `retry_after_ms`, and
    `shutting_down` on the next connection, within the client's `max_retries` and
    `retry_deadline`; other nacks raise `GatewayError` from the `send`. A re-sent cue that the
    gateway refuses gets a `dropped` receipt whose reason is the error code. A `dropped`
    receipt with reason `shutdown` is not final: the stream keeps the cue and sends it again to
    the next gateway it reaches.

    """

    def __init__(
        self,
        url: str,
        *,
        session: aiohttp.ClientSession,
        headers: dict[str, str],
        retry: RetryPolicy,
        reconnect_backoff: Backoff,
        reconnect_deadline: float,
        heartbeat: float | None,
        keep_receipts: bool,
        max_frame_bytes: int,
    ) -> None:
        self.url = url
        self._session = session
        self._headers = headers
        self._retry = retry
        self._reconnect = reconnect_backoff
        self._reconnect_deadline = reconnect_deadline
        self._heartbeat = heartbeat
        # The bookkeeping (frames, refs, what is unanswered, what to resend) is pure: this
        # class only moves bytes and time in and carries out the ledger's effects.
        self._ledger = StreamLedger(retry=retry, max_frame_bytes=max_frame_bytes)
        self._receipts: asyncio.Queue[Receipt | None] | None = (
            asyncio.Queue() if keep_receipts else None
        )
        self._ws: aiohttp.ClientWebSocketResponse[bool] | None = None
        self._wake = asyncio.Event()
        self._settled = asyncio.Event()
        self._settled.set()
        self._task: asyncio.Task[None] | None = None
        self._ended = False
        self._failure: GatewayError | None = None
        self.reconnects = 0

    def __repr__(self) -> str:
        state = "ended" if self._ended else "connected" if self._ws is not None else "connecting"
        return (
            f"<CueStream {self.url} {state} unsettled={self.unsettled}"
            f" reconnects={self.reconnects}"
            f" resent={self.resent}>"
        )

    @property
    def unsettled(self) -> int:
        """Cues sent on this stream that have no ack or no receipt yet."""
        return self._ledger.unsettled

    @property
    def resent(self) -> int:
        """Acknowledged cues sent again after a reconnect, their receipts lost."""
        return self._ledger.resent

    # ---- life cycle ---------------------------------------------------------------------

    async def __aenter__(self) -> CueStream:
        self._ws = ws = await self._connect()
        self._task = asyncio.create_task(self._run(ws), name="gateway-stream")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection; sends still waiting fail, and `receipts()` ends."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
        ws, self._ws = self._ws, None
        if ws is not None:  # the task was cancelled before it began serving
            await ws.close()
        self._end(None)

    def _end(self, failure: GatewayError | None) -> None:
        if self._ended:
            return
        self._ended = True
        self._failure = failure
        error = failure or GatewayUnavailable("stream_closed", "the stream was closed")
        self._apply(self._ledger.end(error))
        self._settled.set()
        if self._receipts is not None:
            self._receipts.put_nowait(None)

    async def _run(self, ws: aiohttp.ClientWebSocketResponse[bool]) -> None:
        try:
            while True:
                await self._serve(ws)
                ws = await self._connect()
                self.reconnects += 1
        except GatewayError as exc:
            log.warning("gateway stream gave up", extra={"code": exc.code, "url": self.url})
            self._end(exc)
        except Exception as exc:
            # A bug here must not leave senders waiting forever; the error is raised by aclose.
            self._end(GatewayUnavailable("client_error", repr(exc)))
            raise

    async def _connect(self) -> aiohttp.ClientWebSocketResponse[bool]:
        return await connect(
            self._session,
            self.url,
            headers=self._headers,
            heartbeat=self._heartbeat,
            backoff=self._reconnect,
            deadline=self._reconnect_deadline,
        )

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse[bool]) -> None:
        """Write frames and read answers on one connection until it closes."""
        self._ws = ws
        resent = self._ledger.connected(asyncio.get_running_loop().time())
        if resent:
            log.info("re-sending acknowledged cues without receipts", extra={"cues": resent})
        writer = asyncio.create_task(self._write(ws), name="gateway-writer")
        try:
            # Until the close frame: a gateway shutting down sends its last receipts first.
            async for message in ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    now = asyncio.get_running_loop().time()
                    self._apply(self._ledger.handle(message.data, now))
                elif message.type is aiohttp.WSMsgType.ERROR:
                    log.info("gateway stream error", extra={"error": repr(message.data)})
                    break
        finally:
            self._ws = None
            writer.cancel()
            try:
                await writer
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    await ws.close()
                    raise
            await ws.close()
        log.info("gateway stream disconnected", extra={"close_code": ws.close_code})
        self._apply(self._ledger.closed(ws.close_code))

    async def _write(self, ws: aiohttp.ClientWebSocketResponse[bool]) -> None:
        """Write every frame the ledger says is due on this connection, each when it is due."""
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            frames, wake_at = self._ledger.due(loop.time())
            for frame in frames:
                try:
                    await ws.send_str(frame.data)
                except (aiohttp.ClientError, ConnectionError) as exc:
                    log.info("gateway stream write failed", extra={"error": repr(exc)})
                    await ws.close()
                    return
            if frames:
                continue  # answers may have arrived meanwhile: ask again before sleeping
            timer = loop.call_at(wake_at, self._wake.set) if wake_at < math.inf else None
            try:
                await self._wake.wait()
            finally:
                if timer is not None:
                    timer.cancel()

    # ---- sending ------------------------------------------------------------------------

    async def send(self, cue: CueJson) -> CueResult:
        """Send one cue and return its ack; raise `GatewayError` if the gateway refuses it."""
        [result] = await self._submit([with_id(cue)], single=True)
        return result

    async def send_many(self, cues: Sequence[CueJson]) -> list[CueResult]:
        """Send up to 100 cues in one frame, all or none, and return their acks."""
        check_batch(cues)
        return await self._submit([with_id(cue) for cue in cues], single=False)

    async def cancel(self, cue_id: str, channel: str) -> Cancelled:
        """Cancel a queued, scheduled or repeating cue with a `cancel` frame; return its ack.

        A cue of this stream that is cancelled gets a `dropped` receipt with reason `cancelled`
        and is never sent again. A cancel whose connection drops before its ack is sent again on
        the next one; if the first went through, that answer is a `not_found` nack.
        """
        if not cue_id or not channel:
            raise ValueError("cancel needs a cue id and a channel")
        result: Cancelled = await self._enqueue(
            lambda ref, now, future: Frame.cancel(ref, cue_id, channel, started=now, future=future)
        )
        return result

    async def _submit(self, cues: list[dict[str, Any]], *, single: bool) -> list[CueResult]:
        results: list[CueResult] = await self._enqueue(
            lambda ref, now, future: Frame.build(
                ref, cues, single=single, started=now, future=future
            )
        )
        return results

    async def _enqueue(self, build: Callable[[int, float, asyncio.Future[Any]], Frame]) -> Any:
        """Queue the frame `build` makes (from its ref, the time and a future); await its ack."""
        if self._ended:
            raise self._failure or GatewayUnavailable("stream_closed", "the stream was closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        frame = build(self._ledger.next_ref(), loop.time(), future)
        self._ledger.add(frame)
        self._settled.clear()
        self._wake.set()
        try:
            return await future
        except asyncio.CancelledError:
            self._ledger.abandon(frame)
            self._check_settled()
            raise

    # ---- effects of the ledger ----------------------------------------------------------

    def _apply(self, effects: Iterable[Effect]) -> None:
        """Carry out what the ledger decided: settle waiters, hand out receipts, log."""
        for effect in effects:
            if isinstance(effect, Resolve):
                future = effect.frame.future
                if future is not None and not future.done():
                    future.set_result(effect.value)
            elif isinstance(effect, Reject):
                future = effect.frame.future
                if future is not None and not future.done():
                    future.set_exception(effect.error)
            elif isinstance(effect, Emit):
                self._emit(effect.receipt)
            elif isinstance(effect, Warn):
                log.warning(effect.message, extra=effect.extra)
        self._check_settled()
        self._wake.set()

    def _emit(self, receipt: Receipt) -> None:
        if self._receipts is not None:
            self._receipts.put_nowait(receipt)

    def _check_settled(self) -> None:
        if self._ledger.settled:
            self._settled.set()
        else:
            self._settled.clear()

    # ---- receipts -----------------------------------------------------------------------

    async def receipts(self) -> AsyncIterator[Receipt]:
        """Receipts as they arrive, until the stream closes (raising if it failed); one reader.

        Receipts of cues acknowledged before a reconnect come from the new connection or, for
        cues the gateway had already delivered, from the stream itself with `at=None`.
        """
        queue = self._receipts
        if queue is None:
            raise RuntimeError("this stream was opened with receipts=False")
        while True:
            if self._ended and queue.empty():
                if self._failure is not None:
                    raise self._failure
                return
            receipt = await queue.get()
            if receipt is not None:
                yield receipt

    async def wait_settled(self) -> None:
        """Wait until every cue sent is acked and receipted, or the stream ended (its failure)."""
        await self._settled.wait()
        if self._failure is not None:
            raise self._failure
