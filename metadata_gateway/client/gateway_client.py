"""The gateway's client for backends: cues over HTTP with idempotent retries, or a stream."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from metadata_gateway.client.errors import UNAVAILABLE, GatewayError, GatewayUnavailable
from metadata_gateway.client.results import Cancelled, CueJson, CueResult, check_batch, with_id
from metadata_gateway.client.retry import Backoff, RetryPolicy
from metadata_gateway.client.stream import DEFAULT_MAX_FRAME_BYTES, CueStream

log = logging.getLogger("metadata_gateway.client")

# Full (429), or shutting down or restarting behind a proxy (502-504): worth trying again.
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
DEFAULT_TIMEOUT_S = 10.0
TRANSPORT_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError)


def retryable(error: GatewayError) -> bool:
    """Whether sending the same cues again (same ids) may succeed."""
    return error.status in RETRYABLE_STATUSES or error.status == UNAVAILABLE


class GatewayClient:
    """Sends cues to a metadata gateway; use as `async with GatewayClient(url) as client`.

    Every cue gets an `id` before it leaves (a random one unless it has its own), so a retry
    is idempotent: the gateway answers `duplicate` for a cue it already queued.
    """

    def __init__(
        self,
        base_url: str,
        *,
        session: aiohttp.ClientSession | None = None,
        token: str | None = None,
        max_retries: int = 5,
        retry_deadline: float = 30.0,
        backoff: Backoff | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._owns_session = session is None
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.retry = RetryPolicy(max_retries, retry_deadline, backoff or Backoff())
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self.requests = 0
        self.retries = 0

    def __repr__(self) -> str:
        return (
            f"<GatewayClient {self.base_url} requests={self.requests} retries={self.retries} "
            f"max_retries={self.retry.max_retries}>"
        )

    async def __aenter__(self) -> GatewayClient:
        _ = self.session
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        """The aiohttp session requests go through: the one given, or the client's own."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        """Close the client's own session (a session that was passed in is left open)."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, cue: CueJson) -> CueResult:
        """Send one cue over HTTP, retrying while the gateway is full, restarting or unreachable."""
        [result] = await self._post(with_id(cue))
        return result

    async def send_many(self, cues: Sequence[CueJson]) -> list[CueResult]:
        """Send up to 100 cues in one request, all or none, with the retries of `send`."""
        check_batch(cues)
        return await self._post({"cues": [with_id(cue) for cue in cues]})

    async def cancel(self, cue_id: str, channel: str) -> Cancelled:
        """Cancel a queued, scheduled or repeating cue (`DELETE /v1/cues/{id}?channel=`).

        Retried as `send` is; a retry whose first attempt went through answers `not_found`.
        """
        if not cue_id or not channel:
            raise ValueError("cancel needs a cue id and a channel")
        path = f"/v1/cues/{quote(cue_id, safe='')}?channel={quote(channel, safe='')}"
        answer = await self._retrying("DELETE", path, None, expect=200)
        return Cancelled.from_json(answer)

    def stream(
        self,
        *,
        receipts: bool = True,
        reconnect_backoff: Backoff | None = None,
        reconnect_deadline: float = 30.0,
        heartbeat: float | None = 20.0,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    ) -> CueStream:
        """A WebSocket session for cues and their receipts; use as `async with client.stream()`.

        See `CueStream` for how it reconnects. Without `receipts`, `CueStream.receipts` is
        unavailable and nothing is buffered for it.
        """
        return CueStream(
            f"{self.base_url}/v1/ws",
            session=self.session,
            headers=self._headers,
            retry=self.retry,
            reconnect_backoff=reconnect_backoff or Backoff(initial=0.05, maximum=2.0),
            reconnect_deadline=reconnect_deadline,
            heartbeat=heartbeat,
            keep_receipts=receipts,
            max_frame_bytes=max_frame_bytes,
        )

    async def _post(self, document: Any) -> list[CueResult]:
        answer = await self._retrying("POST", "/v1/cues", orjson.dumps(document), expect=202)
        try:
            return [CueResult.from_json(entry) for entry in answer["cues"]]
        except (KeyError, TypeError, AttributeError) as exc:
            raise GatewayError(202, "invalid_response", f"unexpected answer: {exc}") from exc

    async def _retrying(self, method: str, path: str, body: bytes | None, *, expect: int) -> Any:
        loop = asyncio.get_running_loop()
        started = loop.time()
        retry = 0
        while True:
            try:
                return await self._request(method, path, body, expect=expect)
            except GatewayError as exc:
                error = exc
            wait = self.retry.wait(
                retry, started=started, now=loop.time(), retry_after=error.retry_after
            )
            if not retryable(error) or wait is None:
                raise error
            log.info(
                "retrying cues" if method == "POST" else "retrying request",
                extra={
                    "method": method,
                    "code": error.code,
                    "status": error.status,
                    "wait_s": round(wait, 3),
                },
            )
            retry += 1
            self.retries += 1
            await asyncio.sleep(wait)

    async def _request(self, method: str, path: str, body: bytes | None, *, expect: int) -> Any:
        """One request; its decoded JSON answer, or the `GatewayError` it stands for."""
        self.requests += 1
        headers = {"Content-Type": "application/json", **self._headers} if body else self._headers
        try:
            async with self.session.request(
                method, f"{self.base_url}{path}", data=body, headers=headers, timeout=self._timeout
            ) as response:
                answer = await response.read()
                status, retry_after = response.status, response.headers.get("Retry-After")
        except TRANSPORT_ERRORS as exc:
            raise GatewayUnavailable("unreachable", f"{type(exc).__name__}: {exc}") from exc
        if status != expect:
            raise GatewayError.from_body(status, answer, retry_after=retry_after)
        try:
            return orjson.loads(answer)
        except orjson.JSONDecodeError as exc:
            raise GatewayError(status, "invalid_response", f"unexpected answer: {exc}") from exc
