"""One WebSocket session: cues in with acks, receipts out, bounded both ways."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from typing import Any

import orjson
from aiohttp import WSCloseCode, WSMsgType, web

from metadata_gateway.core.admission import connection_full
from metadata_gateway.core.cues import resolve_channel
from metadata_gateway.core.errors import CueError
from metadata_gateway.core.validation import CueRules, decode_json
from metadata_gateway.ingress.auth import Caller
from metadata_gateway.ingress.documents import accept_document, reject
from metadata_gateway.intake.seam import Accepted, Cancelled, Intake
from metadata_gateway.running.tasks import TaskRegistry
from metadata_gateway.telling.metrics import Metrics
from metadata_gateway.telling.receipts import ReceiptRouter

log = logging.getLogger(__name__)

FRAME_HARD_LIMIT_FACTOR = 4  # frames up to 4x the body limit get a nack; beyond, close 1009
CLOSE_TIMEOUT_S = 2.0


class WsSession:
    """One WebSocket connection: its cues in flight and its outbound queue."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        *,
        transport: asyncio.Transport | None,
        intake: Intake,
        rules: CueRules,
        caller: Caller,
        metrics: Metrics,
        router: ReceiptRouter,
        tasks: TaskRegistry,
        max_in_flight: int,
        outbound_max_bytes: int,
    ) -> None:
        self.ws = ws
        self._intake = intake
        self._rules = rules
        self._transport = transport
        self._caller = caller
        self._metrics = metrics
        self._router = router
        self._tasks = tasks
        self._max_in_flight = max_in_flight
        self._outbound_max = outbound_max_bytes
        self.in_flight: set[tuple[str, str]] = set()
        self._out: deque[bytes] = deque()
        self._out_bytes = 0
        self._ready = asyncio.Event()
        self.close_reason: str | None = None
        self._writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return (
            f"<WsSession in_flight={len(self.in_flight)} outbound={self._out_bytes}B "
            f"closing={self.close_reason}>"
        )

    # ---- outbound -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the task that writes queued messages to the socket."""
        self._writer = self._tasks.spawn(self._write(), name="ws-writer")

    def send(self, message: dict[str, Any]) -> None:
        """Queue a message; a peer that lets too much pile up is disconnected."""
        if self.close_reason is not None:
            return
        data = orjson.dumps(message)
        self._out.append(data)
        self._out_bytes += len(data)
        self._ready.set()
        if self._out_bytes + self._transport_backlog() > self._outbound_max:
            # The writer may be stuck on a full socket: stop it and close from a task of our own.
            self.close_reason = "slow_consumer"
            self._out.clear()
            self._out_bytes = 0
            if self._writer is not None:
                self._writer.cancel()
            self._closer = self._tasks.spawn(
                self._close(WSCloseCode.POLICY_VIOLATION, "receipts not read fast enough"),
                name="ws-close-slow-consumer",
            )

    deliver = send  # ReceiptSubscriber

    def settled(self, channel: str, cue_id: str) -> None:
        """A cue of this connection was sent or dropped."""
        self.in_flight.discard((channel, cue_id))

    def _transport_backlog(self) -> int:
        transport = self._transport
        return transport.get_write_buffer_size() if transport is not None else 0

    async def _write(self) -> None:
        ws = self.ws
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._out:
                data = self._out.popleft()
                self._out_bytes -= len(data)
                await ws.send_frame(data, WSMsgType.TEXT)
                self._metrics.ws_out.inc()
            if self.close_reason is not None:
                return

    async def _close(self, code: int, reason: str) -> None:
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self.ws.close(code=code, message=reason.encode())
        except TimeoutError:
            # The peer reads nothing, not even a close frame: drop the connection.
            if self._transport is not None:
                self._transport.abort()

    async def close(self, code: int, reason: str) -> None:
        """Flush what is queued (for a bounded time), then close with `code` (at shutdown)."""
        if self.close_reason is None:
            self.close_reason = reason  # from now on nothing new is queued
        writer = self._writer
        if writer is not None and not writer.done():
            self._ready.set()
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await asyncio.shield(writer)
            except TimeoutError:
                writer.cancel()
        await self._close(code, reason)

    async def stop_writer(self) -> None:
        """Cancel the writer (and wait for a slow-consumer close) once the session is over."""
        await self._tasks.cancel(self._writer)
        if self._closer is not None:
            await asyncio.gather(self._closer, return_exceptions=True)

    # ---- inbound ------------------------------------------------------------------------

    async def receive(self, text: str | bytes) -> None:
        """Answer one frame with an ack or a nack, never raising for bad input; the reader
        awaits each frame, so acks stay in frame order."""
        parsed = self._parse_frame(text)
        if parsed is None:
            return
        ref, op, document = parsed
        try:
            if op == "cancel":
                cancelled = await self._cancel(document)
                self.send({"op": "ack", "ref": ref, "cues": [cancelled.as_json()]})
                return
            answers = await accept_document(
                document,
                intake=self._intake,
                rules=self._rules,
                caller=self._caller,
                metrics=self._metrics,
            )
        except CueError as exc:  # cue refusals were counted by accept_document
            self.send({"op": "nack", "ref": ref, "error": exc.body()})
            return
        self._ack(ref, answers)

    def _parse_frame(self, text: str | bytes) -> tuple[Any, str, Any] | None:
        """The ref, op and cue document (or cancel frame) of a frame; None when the frame was
        answered already."""
        self._metrics.ws_in.inc()
        ref: Any = None
        try:
            frame = decode_json(text)
            if not isinstance(frame, dict):
                raise CueError("invalid_json", "a frame must be a JSON object", status=400)
            ref = frame.get("ref")
            if isinstance(ref, list | dict):  # only containers can be too deep
                try:  # orjson reads 1024 levels of nesting but writes only 254: echo what we can
                    orjson.dumps({"ref": ref})  # as deep as it will sit in the answer
                except orjson.JSONEncodeError:
                    ref = None
                    raise CueError(
                        "invalid_request", "ref is nested too deeply", status=400, field="ref"
                    ) from None
            if frame.get("op") == "cancel":
                return ref, "cancel", frame
            document, count = _document(frame)
            self._check_in_flight(count)
        except CueError as exc:
            reject(self._metrics, exc)
            self.send({"op": "nack", "ref": ref, "error": exc.body()})
            return None
        return ref, "cue", document

    def _ack(self, ref: Any, answers: Sequence[Accepted]) -> None:
        entries = []
        for answer in answers:
            if answer.status == "queued" or answer.delivered is False:
                self.in_flight.add((answer.channel, answer.id))
                self._router.subscribe(answer.channel, answer.id, self)
            entries.append(answer.as_json())
        self.send({"op": "ack", "ref": ref, "cues": entries})

    async def _cancel(self, frame: dict[str, Any]) -> Cancelled:
        channel, cue_id = frame.get("channel"), frame.get("id")
        if not isinstance(cue_id, str) or not cue_id:
            raise CueError("invalid_request", "cancel needs an id", status=400, field="id")
        arn = resolve_channel(channel if isinstance(channel, str) else "", self._rules.aliases)
        self._caller.authorize_channel(arn)
        return await self._intake.cancel(arn, cue_id)

    def reject_oversized(self, size: int, limit: int) -> None:
        """Nack a frame over the body limit (not parsed, so no ref)."""
        error = CueError(
            "body_too_large",
            f"the frame exceeds {limit} bytes; send fewer cues per frame",
            status=413,
            size=size,
            limit=limit,
        )
        reject(self._metrics, error)
        self.send({"op": "nack", "ref": None, "error": error.body()})

    def _check_in_flight(self, count: int) -> None:
        excess = len(self.in_flight) + count - self._max_in_flight
        if excess > 0:
            wait = self._intake.room_wait(self.in_flight, excess)
            raise connection_full(len(self.in_flight), wait)

    def forget(self) -> None:
        """Drop every subscription of this connection."""
        self._router.unsubscribe_all(self, list(self.in_flight))
        self.in_flight.clear()


def _document(frame: dict[str, Any]) -> tuple[Any, int]:
    """The cue document a frame carries, and how many cues it holds."""
    op = frame.get("op")
    if op == "cue":
        return {k: v for k, v in frame.items() if k not in ("op", "ref")}, 1
    if op == "cues":
        cues = frame.get("cues")
        return {"cues": cues}, len(cues) if isinstance(cues, list) else 1
    raise CueError("invalid_op", "op must be cue, cues or cancel", status=400, field="op")


class WsHub:
    """The open WebSocket sessions, so that shutdown can close each with a frame."""

    def __init__(self) -> None:
        self.sessions: set[WsSession] = set()

    def __repr__(self) -> str:
        return f"<WsHub sessions={len(self.sessions)}>"

    async def close_all(self) -> None:
        """Close every session with 1001 (going away), flushing receipts first."""
        sessions = list(self.sessions)
        for session in sessions:
            session.close_reason = session.close_reason or "shutdown"
        await asyncio.gather(
            *(s.close(WSCloseCode.GOING_AWAY, "server shutting down") for s in sessions)
        )
