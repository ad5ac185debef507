"""Opening the gateway's WebSocket: retried with backoff while it is down or restarting."""

from __future__ import annotations

import asyncio
import logging

import aiohttp

from metadata_gateway.client.errors import (
    CODE_OF_STATUS,
    GatewayError,
    GatewayUnavailable,
    retry_after_seconds,
)
from metadata_gateway.client.retry import Backoff

log = logging.getLogger("metadata_gateway.client")

CLOSE_TIMEOUT_S = 2.0  # a gateway that went away answers no close frame
# A handshake answered with these may succeed later (the gateway is full or restarting).
RETRYABLE_HANDSHAKE = frozenset({429, 502, 503, 504})


async def connect(
    session: aiohttp.ClientSession,
    url: str,
    *,
    headers: dict[str, str],
    heartbeat: float | None,
    backoff: Backoff,
    deadline: float,
) -> aiohttp.ClientWebSocketResponse[bool]:
    """A new connection, retried with backoff until `deadline` seconds have passed."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    attempt = 0
    while True:
        retry_after: float | None = None
        try:
            return await session.ws_connect(
                url,
                headers=headers,
                heartbeat=heartbeat,
                timeout=aiohttp.ClientWSTimeout(ws_close=CLOSE_TIMEOUT_S),
            )
        except aiohttp.WSServerHandshakeError as exc:
            code = CODE_OF_STATUS.get(exc.status, f"http_{exc.status}")
            error = GatewayError(exc.status, code, f"the WebSocket upgrade got {exc.status}")
            if exc.status not in RETRYABLE_HANDSHAKE:
                raise error from exc
            retry_after = retry_after_seconds(
                exc.headers.get("Retry-After") if exc.headers else None
            )
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            error = GatewayUnavailable("unreachable", f"{type(exc).__name__}: {exc}")
        # A gateway shutting down says when to come back; its replacement may be up sooner.
        wait = backoff.delay(attempt)
        if retry_after is not None:
            wait = min(max(wait, retry_after), backoff.maximum)
        if loop.time() + wait > started + deadline:
            raise error
        log.info("gateway stream reconnecting", extra={"code": error.code, "wait_s": wait})
        attempt += 1
        await asyncio.sleep(wait)
