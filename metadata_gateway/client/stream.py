"""A stream of cues over the gateway's WebSocket that outlives dropped connections and restarts."""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from types import TracebackType
from typing import Any

import aiohttp
import orjson

from metadata_gateway.client.connect import connect
from metadata_gateway.client.errors import GatewayError, GatewayUnavailable
from metadata_gateway.client.frames import CueKey, Frame, chunks
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

DEFAULT_MAX_FRAME_BYTES = 256 * 1024  # the gateway's default max_body_bytes
MESSAGE_TOO_BIG = 1009  # the close code for a frame far over the gateway's limit
RETRYABLE_CODES = frozenset({"queue_full", "client_rate_limited", "shutting_down"})


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
        self._max_frame_bytes = max_frame_bytes
        self._frames: dict[int, Frame] = {}  # in the order they are to be written
        self._refs = itertools.count(1)
        self._unreceipted: dict[CueKey, dict[str, Any]] = {}
        self._receipts: asyncio.Queue[Receipt | None] | None = (
            asyncio.Queue() if keep_receipts else None
        )
        self._ws: aiohttp.ClientWebSocketResponse[bool] | None = None
        self._generation = 0
        self._answers: deque[int] = deque()  # refs written on this connection, unanswered
        self._hold_until = 0.0  # the gateway is shutting down: write nothing before this
        self._wake = asyncio.Event()
        self._settled = asyncio.Event()
        self._settled.set()
        self._task: asyncio.Task[None] | None = None
        self._ended = False
        self._failure: GatewayError | None = None
        self.reconnects = 0
        self.resent = 0

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
        return sum(len(f.cues) for f in self._frames.values()) + len(self._unreceipted)

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
        for frame in self._frames.values():
            if frame.future is not None and not frame.future.done():
                frame.future.set_exception(error)
        self._frames.clear()
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
        self._generation += 1
        self._ws, self._hold_until = ws, 0.0
        self._answers.clear()
        self._requeue_unreceipted()
        writer = asyncio.create_task(self._write(ws, self._generation), name="gateway-writer")
        try:
            # Until the close frame: a gateway shutting down sends its last receipts first.
            async for message in ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    self._handle(message.data)
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
        if ws.close_code == MESSAGE_TOO_BIG and self._answers:
            frame = self._frames.get(self._answers[0])
            if frame is not None:  # sending it again would only close the next connection
                self._fail(frame, GatewayError(413, "body_too_large", "the frame is too large"))

    def _requeue_unreceipted(self) -> None:
        """Put acknowledged cues whose receipts are lost in frames, ahead of the others."""
        if not self._unreceipted:
            return
        now = asyncio.get_running_loop().time()
        items = list(self._unreceipted.items())
        self._unreceipted.clear()
        frames: dict[int, Frame] = {}
        for chunk in chunks(items, self._max_frame_bytes // 2):
            ref = next(self._refs)
            cues, keys = [cue for _, cue in chunk], [key for key, _ in chunk]
            frames[ref] = Frame.build(ref, cues, single=False, started=now, future=None, keys=keys)
        self._frames = {**frames, **self._frames}
        self.resent += len(items)
        log.info("re-sending acknowledged cues without receipts", extra={"cues": len(items)})

    async def _write(self, ws: aiohttp.ClientWebSocketResponse[bool], generation: int) -> None:
        """Write every frame not yet written on this connection, each when it is due."""
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            wake_at = math.inf
            for frame in list(self._frames.values()):
                now = loop.time()
                if now < self._hold_until:
                    wake_at = self._hold_until
                    break
                if self._frames.get(frame.ref) is not frame or frame.written == generation:
                    continue
                if frame.not_before > now:
                    wake_at = min(wake_at, frame.not_before)
                    continue
                frame.written = generation
                self._answers.append(frame.ref)
                try:
                    await ws.send_str(frame.data)
                except (aiohttp.ClientError, ConnectionError) as exc:
                    log.info("gateway stream write failed", extra={"error": repr(exc)})
                    await ws.close()
                    return
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
        frame = build(next(self._refs), loop.time(), future)
        if len(frame.data) > self._max_frame_bytes:
            raise GatewayError(
                413,
                "body_too_large",
                f"the frame takes {len(frame.data)} bytes, over {self._max_frame_bytes}",
            )
        self._frames[frame.ref] = frame
        self._settled.clear()
        self._wake.set()
        try:
            return await future
        except asyncio.CancelledError:
            if self._frames.get(frame.ref) is frame:
                if frame.written:  # it may be queued: keep it so that its receipt is followed
                    frame.future = None
                else:
                    del self._frames[frame.ref]
                    self._check_settled()
            raise

    # ---- answers ------------------------------------------------------------------------

    def _handle(self, text: str | bytes) -> None:
        try:
            message = orjson.loads(text)
            op = message.get("op")
            if op == "ack":
                self._on_ack(message)
            elif op == "nack":
                self._on_nack(message)
            elif op in ("sent", "dropped"):
                self._on_receipt(Receipt.from_json(message))
        except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as exc:
            log.warning("unexpected message from the gateway", extra={"error": repr(exc)})
        self._check_settled()

    def _answered(self, ref: object) -> Frame | None:
        """The frame an ack or nack answers; one with no ref answers the oldest unanswered."""
        if ref is None:  # a frame the gateway could not parse (too large): answers are in order
            ref = self._answers[0] if self._answers else None
        if isinstance(ref, int) and ref in self._answers:
            self._answers.remove(ref)
        frame = self._frames.get(ref) if isinstance(ref, int) else None
        if frame is None or frame.written != self._generation:
            return None
        return frame

    def _on_ack(self, message: dict[str, Any]) -> None:
        frame = self._answered(message.get("ref"))
        if frame is None:
            return
        if frame.cancels:
            self._on_cancel_ack(frame, message)
            return
        try:
            results = [CueResult.from_json(entry) for entry in message["cues"]]
        except (AttributeError, KeyError, TypeError) as exc:
            self._fail(frame, GatewayError(0, "invalid_response", f"unexpected ack: {exc!r}"))
            return
        del self._frames[frame.ref]
        delivered: dict[str, list[str]] = {}
        for cue, result in zip(frame.cues, results, strict=False):
            if result.status == "queued" or result.delivered is False:
                self._unreceipted[(result.channel, result.id)] = cue
            elif result.delivered:
                delivered.setdefault(result.channel, []).append(result.id)
        for channel, ids in delivered.items():
            self._emit(Receipt("sent", channel, tuple(ids), at=None))
        if frame.future is not None and not frame.future.done():
            frame.future.set_result(results)

    def _on_cancel_ack(self, frame: Frame, message: dict[str, Any]) -> None:
        try:
            result = Cancelled.from_json(message["cues"][0])
        except (AttributeError, IndexError, KeyError, TypeError) as exc:
            self._fail(frame, GatewayError(0, "invalid_response", f"unexpected ack: {exc!r}"))
            return
        del self._frames[frame.ref]
        # A cue of an earlier connection has no subscription for its `dropped` receipt: make it.
        if self._unreceipted.pop((result.channel, result.id), None) is not None:
            self._emit(Receipt("dropped", result.channel, (result.id,), reason="cancelled"))
        if frame.future is not None and not frame.future.done():
            frame.future.set_result(result)

    def _on_nack(self, message: dict[str, Any]) -> None:
        error = GatewayError.from_error(None, message.get("error"))
        frame = self._answered(message.get("ref"))
        if frame is None:
            log.warning("nack for no known frame", extra={"code": error.code})
            return
        now = asyncio.get_running_loop().time()
        wait = None
        if error.code in RETRYABLE_CODES:
            wait = self._retry.wait(
                frame.retries, started=frame.started, now=now, retry_after=error.retry_after
            )
        if wait is None:
            self._fail(frame, error)
            return
        frame.retries += 1
        frame.written = 0
        if error.code == "shutting_down":
            # The connection is about to close: the next one gets the frame, unless it lasts.
            self._hold_until = max(self._hold_until, now + wait)
        else:
            frame.not_before = now + wait
        self._wake.set()

    def _fail(self, frame: Frame, error: GatewayError) -> None:
        del self._frames[frame.ref]
        self._check_settled()
        if frame.future is not None:
            if not frame.future.done():
                frame.future.set_exception(error)
            return
        by_channel: dict[str, list[str]] = {}
        for channel, cue_id in frame.keys or ():
            by_channel.setdefault(channel, []).append(cue_id)
        for channel, ids in by_channel.items():  # a re-send refused: those cues are lost
            self._emit(Receipt("dropped", channel, tuple(ids), reason=error.code))
        log.warning("cues not re-sent", extra={"code": error.code, "cues": len(frame.cues)})

    def _on_receipt(self, receipt: Receipt) -> None:
        if receipt.op == "dropped" and receipt.reason == "shutdown":
            # The process gave up on them only because it is stopping: they stay unreceipted
            # and go, with the same ids, to whichever gateway the stream reaches next.
            return
        for cue_id in receipt.ids:
            self._unreceipted.pop((receipt.channel, cue_id), None)
        self._emit(receipt)

    def _emit(self, receipt: Receipt) -> None:
        if self._receipts is not None:
            self._receipts.put_nowait(receipt)

    def _check_settled(self) -> None:
        if self._frames or self._unreceipted:
            self._settled.clear()
        else:
            self._settled.set()

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
