"""The WebSocket API at `/v1/ws`: frames in, acks and receipts out (see README.md)."""

from __future__ import annotations

import contextlib
import socket

from aiohttp import WSCloseCode, WSMsgType, hdrs, web

from metadata_gateway.core.admission import SHUTDOWN_RETRY_AFTER_S
from metadata_gateway.core.errors import CueError
from metadata_gateway.ingress.auth import WS_PROTOCOL, authenticate, bearer_from_subprotocols
from metadata_gateway.ingress.documents import reject
from metadata_gateway.ingress.ws_session import FRAME_HARD_LIMIT_FACTOR, WsSession
from metadata_gateway.running.appkeys import (
    AUTH,
    INTAKE,
    METRICS,
    RECEIPTS,
    RULES,
    SETTINGS,
    TASKS,
    WS_HUB,
)


def _bound_kernel_buffer(request: web.Request, size: int) -> None:
    # A peer that stops reading should be noticed after `size` bytes, not after the
    # several megabytes a loopback socket buffers by default.
    sock = request.transport.get_extra_info("socket") if request.transport else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, max(4096, size // 2))


async def websocket_handler(request: web.Request) -> web.WebSocketResponse:
    """`GET /v1/ws`: one session of cue frames, acks and receipts."""
    app = request.app
    metrics, settings, intake = app[METRICS], app[SETTINGS], app[INTAKE]
    hub = app[WS_HUB]
    limit = settings.max_body_bytes
    ws = web.WebSocketResponse(
        heartbeat=settings.ws_heartbeat,
        max_msg_size=limit * FRAME_HARD_LIMIT_FACTOR,
        protocols=(WS_PROTOCOL,),
    )
    try:
        # Checked before the handshake: aiohttp logs offered protocols that it cannot select.
        bearer = bearer_from_subprotocols(request.headers.get(hdrs.SEC_WEBSOCKET_PROTOCOL))
        caller = authenticate(app.get(AUTH), request.headers.get("Authorization") or bearer)
    except CueError as exc:
        raise reject(metrics, exc) from None
    try:
        intake.ensure_open()
    except CueError:
        raise CueError(
            "shutting_down",
            "the gateway is shutting down",
            status=503,
            retry_after=SHUTDOWN_RETRY_AFTER_S,
        ) from None
    await ws.prepare(request)
    _bound_kernel_buffer(request, settings.ws_outbound_max_bytes)
    session = WsSession(
        ws,
        transport=request.transport,
        intake=intake,
        rules=app[RULES],
        caller=caller,
        metrics=metrics,
        router=app[RECEIPTS],
        tasks=app[TASKS],
        max_in_flight=settings.ws_max_in_flight,
        outbound_max_bytes=settings.ws_outbound_max_bytes,
    )
    hub.sessions.add(session)
    metrics.ws_connections.inc()
    session.start()
    reason = "client_closed"
    try:
        async for message in ws:
            if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                data = message.data
                size = len(data.encode() if isinstance(data, str) else data)
                if size > limit:
                    session.reject_oversized(size, limit)
                else:
                    await session.receive(data)
            elif message.type is WSMsgType.ERROR:
                reason = "frame_too_large" if ws.close_code == 1009 else "protocol_error"
        if ws.close_code == WSCloseCode.ABNORMAL_CLOSURE and reason == "client_closed":
            reason = "heartbeat_timeout"
    finally:
        hub.sessions.discard(session)
        session.forget()
        await session.stop_writer()
        metrics.ws_connections.dec()
        metrics.ws_disconnects.labels(session.close_reason or reason).inc()
    return ws
