"""Closed-loop HTTP/1.1 and WebSocket load on raw sockets, cheap enough not to be the bottleneck.

aiohttp's own client spends about as much CPU per request as its server does, so on two cores
it would measure itself. These protocols send prebuilt bytes and parse only what they must:
the status line and Content-Length of a response, the header of a WebSocket frame.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

HANDSHAKE_TIMEOUT_S = 5.0
_MASK = b"\x12\x34\x56\x78"  # any key will do; the server only unmasks
_ACK = b'{"op":"ack"'
_NACK = b'{"op":"nack"'


@dataclass(slots=True)
class LoadResult:
    """Answers counted inside the measured window, by kind."""

    window_s: float
    answers: Counter[str] = field(default_factory=Counter)

    def rate(self, kind: str) -> float:
        """Answers of `kind` per second of the window."""
        return self.answers[kind] / self.window_s if self.window_s > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        """The counts and the window."""
        return {"window_s": round(self.window_s, 3), "answers": dict(self.answers)}


class _Window:
    """The measured interval: answers before `opens` (warm-up) or after `closes` are not counted."""

    def __init__(self, result: LoadResult, opens: float, closes: float) -> None:
        self.result = result
        self.opens = opens
        self.closes = closes

    def count(self, kind: str) -> None:
        now = time.monotonic()
        if self.opens <= now < self.closes:
            self.result.answers[kind] += 1

    @property
    def over(self) -> bool:
        return time.monotonic() >= self.closes


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"{url!r} names no host and port")
    return parts.hostname, parts.port


def _header_lines(headers: Mapping[str, str]) -> str:
    return "".join(f"{name}: {value}\r\n" for name, value in headers.items())


def http_request(url: str, path: str, body: bytes, headers: Mapping[str, str]) -> bytes:
    """A keep-alive `POST path` with a JSON body, as bytes on the wire."""
    host = urlsplit(url).netloc
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"{_header_lines(headers)}Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class _HttpClient(asyncio.Protocol):
    """One connection sending the next request as soon as the previous answer is complete."""

    def __init__(self, requests: Sequence[bytes], offset: int, window: _Window) -> None:
        self._requests = requests
        self._next = offset
        self._window = window
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._send()

    def _send(self) -> None:
        assert self._transport is not None
        self._transport.write(self._requests[self._next % len(self._requests)])
        self._next += 1

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while True:
            head_end = buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = bytes(buffer[:head_end]).lower()
            at = head.find(b"content-length:")
            length = int(head[at + 15 : head.find(b"\r\n", at)].strip() or 0) if at >= 0 else 0
            if len(buffer) < head_end + 4 + length:
                return
            self._window.count(head[9:12].decode())
            del buffer[: head_end + 4 + length]
            if self._window.over:
                self._finish()
                return
            self._send()

    def _finish(self) -> None:
        if self._transport is not None:
            self._transport.close()
        if not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            if exc is None and self._window.over:
                self.done.set_result(None)
            else:
                self.done.set_exception(exc or ConnectionError("server closed the connection"))


async def http_load(
    url: str,
    requests: Sequence[bytes],
    *,
    connections: int,
    warmup: float,
    duration: float,
) -> LoadResult:
    """Keep `connections` requests in flight for `warmup + duration` s; count answers by status."""
    loop = asyncio.get_running_loop()
    host, port = _address(url)
    start = time.monotonic()
    result = LoadResult(window_s=duration)
    window = _Window(result, start + warmup, start + warmup + duration)
    clients = []
    for n in range(connections):
        # Connections start at different requests, so they do not all hit one channel.
        _, client = await loop.create_connection(
            lambda n=n: _HttpClient(requests, n * 7919, window),  # type: ignore[misc]
            host,
            port,
        )
        clients.append(client)
    await asyncio.gather(*(c.done for c in clients))
    return result


def ws_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A masked client frame (FIN set) carrying `payload`."""
    size = len(payload)
    if size < 126:
        head = bytes([0x80 | opcode, 0x80 | size])
    elif size < 65536:
        head = bytes([0x80 | opcode, 0x80 | 126]) + size.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + size.to_bytes(8, "big")
    key = int.from_bytes((_MASK * (size // 4 + 1))[:size], "big")
    masked = (int.from_bytes(payload, "big") ^ key).to_bytes(size, "big")
    return head + _MASK + masked


class _WsClient(asyncio.Protocol):
    """One WebSocket connection keeping `depth` cue frames unanswered at all times."""

    def __init__(
        self, handshake: bytes, frames: Sequence[bytes], offset: int, depth: int, window: _Window
    ) -> None:
        self._handshake = handshake
        self._frames = frames
        self._next = offset
        self._depth = depth
        self._window = window
        self._buffer = bytearray()
        self._open = False
        self._transport: asyncio.Transport | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.write(self._handshake)

    def _send(self, count: int) -> None:
        assert self._transport is not None
        frames = self._frames
        chunk = [frames[(self._next + n) % len(frames)] for n in range(count)]
        self._next += count
        self._transport.write(b"".join(chunk))

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        if not self._open:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                self._fail(ConnectionError(bytes(buffer[:end]).decode(errors="replace")))
                return
            del buffer[: end + 4]
            self._open = True
            self._send(self._depth)
        answered = 0
        while len(buffer) >= 2:
            opcode, size = buffer[0] & 0x0F, buffer[1] & 0x7F
            start = 2
            if size == 126:
                if len(buffer) < 4:
                    break
                size, start = int.from_bytes(buffer[2:4], "big"), 4
            elif size == 127:
                if len(buffer) < 10:
                    break
                size, start = int.from_bytes(buffer[2:10], "big"), 10
            if len(buffer) < start + size:
                break
            payload = bytes(buffer[start : start + size])
            del buffer[: start + size]
            if opcode == 0x9:  # ping: a server with a heartbeat closes peers that never pong
                assert self._transport is not None
                self._transport.write(ws_frame(payload, 0xA))
            elif opcode == 0x8:
                self._fail(ConnectionError(f"server closed the WebSocket: {payload[2:]!r}"))
                return
            elif payload.startswith(_ACK):
                self._window.count("ack")
                answered += 1
            elif payload.startswith(_NACK):
                self._window.count("nack")
                answered += 1
            else:
                self._window.count("other")
        if self._window.over:
            self._finish()
        elif answered:
            self._send(answered)

    def _finish(self) -> None:
        if self._transport is not None:
            self._transport.write(ws_frame(b"\x03\xe8", 0x8))  # close, 1000
            self._transport.close()
        if not self.done.done():
            self.done.set_result(None)

    def _fail(self, exc: Exception) -> None:
        if self._transport is not None:
            self._transport.abort()
        if not self.done.done():
            self.done.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            if self._window.over:
                self.done.set_result(None)
            else:
                self.done.set_exception(exc or ConnectionError("server closed the connection"))


async def ws_load(
    url: str,
    path: str,
    frames: Sequence[bytes],
    *,
    headers: Mapping[str, str],
    connections: int,
    depth: int,
    warmup: float,
    duration: float,
) -> LoadResult:
    """Keep `depth` frames unanswered on each of `connections` WebSockets; count acks and nacks."""
    loop = asyncio.get_running_loop()
    host, port = _address(url)
    netloc = urlsplit(url).netloc
    start = time.monotonic()
    result = LoadResult(window_s=duration)
    window = _Window(result, start + warmup, start + warmup + duration)
    clients = []
    for n in range(connections):
        key = base64.b64encode(os.urandom(16)).decode()
        handshake = (
            f"GET {path} HTTP/1.1\r\nHost: {netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"{_header_lines(headers)}\r\n"
        ).encode()
        _, client = await loop.create_connection(
            lambda h=handshake, n=n: _WsClient(h, frames, n * 7919, depth, window),  # type: ignore[misc]
            host,
            port,
        )
        clients.append(client)
    async with asyncio.timeout(warmup + duration + HANDSHAKE_TIMEOUT_S):
        await asyncio.gather(*(c.done for c in clients))
    return result
