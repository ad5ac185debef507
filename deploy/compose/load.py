"""Bounded demo load for a gateway on this machine: cues over HTTP and WebSocket, some bad ones.

Run it next to `docker compose up` (deploy/compose) so the dashboard moves:

    python3 deploy/compose/load.py --duration 120 --rate 10

It only talks to loopback addresses, stops after `--duration` seconds, and needs nothing beyond
the Python standard library. Besides valid cues it sends, on purpose, a few that end in each
other state the dashboard shows: invalid (rejected), superseded polls, cues whose TTL runs out
behind a full payload (expired), and cues for a channel that does not exist (dropped for an IVS
error). `--clean` sends only valid cues.
"""

from __future__ import annotations

import argparse
import base64
import ipaddress
import itertools
import json
import os
import socket
import struct
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Sequence
from typing import BinaryIO
from urllib.parse import urlsplit

MAX_DURATION_S = 3600.0  # a demo, not a soak: an hour at most
MAX_RATE = 50.0  # requests per second; the demo channel takes 5 calls/s anyway
WS_EVERY = 10  # one short WebSocket session every this many ticks
HTTP_TIMEOUT_S = 5.0
# An ARN in the local IVS's account and region that names no channel: IVS answers not found.
MISSING_CHANNEL = "arn:aws:ivs:us-west-2:123456789012:channel/doesNotExist0"
# A custom cue this big fills a PutMetadata payload alone, so a cue queued right behind it waits
# for the channel's next call (200 ms later at 5 calls/s) and a 1 ms TTL runs out meanwhile.
PAD_BYTES = 900
SCHEDULE_AHEAD_MS = 500  # scheduled cues are held this long before they may go out
STATE_REPEAT_MS = 1000  # the shortest repeat the gateway allows


class NotLoopback(ValueError):
    """The target is not on this machine."""


def loopback_target(url: str) -> tuple[str, int]:
    """Host and port of `url`, which must resolve only to loopback addresses."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise NotLoopback(f"{url!r}: give an http:// URL of a gateway on this machine")
    port = parts.port or 80
    try:
        infos = socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise NotLoopback(f"{parts.hostname!r} does not resolve: {exc}") from None
    addresses = {ipaddress.ip_address(info[4][0]) for info in infos}
    if not addresses or not all(address.is_loopback for address in addresses):
        raise NotLoopback(f"{parts.hostname!r} is not a loopback address; this load stays local")
    return parts.hostname, port


def plan(tick: int, channel: str, *, clean: bool, now_ms: int, until_ms: int) -> list[object]:
    """The HTTP request bodies to send at `tick`: always valid cues, sometimes trouble.

    `now_ms` is the wall clock in unix milliseconds; `until_ms`, when the load ends, bounds
    how long the state cue keeps repeating.
    """
    question = f"q{tick}"
    bodies: list[object] = [
        {
            "cues": [
                {"channel": channel, "type": "quiz", "data": {"question_id": question}},
                {"channel": channel, "type": "caption", "data": {"text": f"caption {tick}"}},
            ]
        }
    ]
    if tick % 20 == 0:  # the current question, re-sent every second for late joiners
        state = {"question_id": question}
        ttl_ms = max(1, until_ms - now_ms)
        bodies.append(
            {
                "channel": channel,
                "type": "state",
                "key": "quiz:current",
                "data": state,
                "repeat_ms": STATE_REPEAT_MS,
                "ttl_ms": ttl_ms,
            }
        )
    if tick % 4 == 0:
        not_before = now_ms + SCHEDULE_AHEAD_MS
        bodies.append(
            {
                "channel": channel,
                "type": "quiz",
                "data": {"question_id": f"{question}-reveal"},
                "not_before": not_before,
            }
        )
    if tick % 3 == 0:  # the second poll cue replaces the first while it waits
        poll = f"p{tick}"
        bodies.append(
            {
                "cues": [
                    {"channel": channel, "type": "poll", "data": {"poll_id": poll, "votes": n}}
                    for n in (1, 2)
                ]
            }
        )
    if clean:
        return bodies
    if tick % 5 == 0:
        bodies.append({"channel": channel, "type": "quiz", "data": {}})  # no question_id
    if tick % 7 == 0:
        pad = "x" * PAD_BYTES
        bodies.append(
            {
                "cues": [
                    {"channel": channel, "type": "custom", "data": {"pad": pad}},
                    {"channel": channel, "type": "custom", "data": {}, "ttl_ms": 1},
                ]
            }
        )
    if tick % 11 == 0:
        bodies.append({"channel": MISSING_CHANNEL, "type": "quiz", "data": {"question_id": "x"}})
    return bodies


def post(base: str, body: object, headers: dict[str, str]) -> int:
    """POST one cue document; return the HTTP status (0 if the gateway did not answer)."""
    request = urllib.request.Request(
        f"{base}/v1/cues",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.read()
        exc.close()
        return exc.code
    except OSError:
        return 0


def websocket_session(
    host: str, port: int, channel: str, cues: int, headers: dict[str, str], timeout: float = 3.0
) -> int:
    """Open /v1/ws, send `cues` cue frames, wait for their acks, close; return acks seen."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        sock.sendall(
            (
                f"GET /v1/ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\n{extra}\r\n"
            ).encode()
        )
        reader = sock.makefile("rb")
        status = reader.readline()
        if b" 101 " not in status:
            return 0
        while reader.readline() not in (b"\r\n", b""):
            pass
        for n in range(cues):
            frame = {"op": "cue", "ref": n, "channel": channel, "type": "custom", "data": {"n": n}}
            sock.sendall(_ws_frame(0x1, json.dumps(frame).encode()))
        acks = 0
        deadline = time.monotonic() + timeout
        while acks < cues and time.monotonic() < deadline:
            opcode, payload = _read_ws_frame(reader)
            if opcode == 0x8:
                break
            if opcode == 0x1 and json.loads(payload).get("op") in ("ack", "nack"):
                acks += 1
        sock.sendall(_ws_frame(0x8, struct.pack("!H", 1000)))
        return acks


def _ws_frame(opcode: int, payload: bytes) -> bytes:
    # Client frames are masked (RFC 6455 section 5.3); payloads here stay under 64 KiB.
    mask = os.urandom(4)
    length = len(payload)
    head = bytes([0x80 | opcode])
    head += (
        bytes([0x80 | length]) if length < 126 else bytes([0x80 | 126]) + struct.pack("!H", length)
    )
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _read_ws_frame(reader: BinaryIO) -> tuple[int, bytes]:
    read = reader.read
    first, second = read(2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", read(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", read(8))
    return first & 0x0F, read(length)


def run(
    url: str,
    *,
    duration: float,
    rate: float,
    channel: str,
    clean: bool,
    token: str | None = None,
) -> Counter[str]:
    """Send the load for `duration` seconds at `rate` ticks per second; count the answers."""
    host, port = loopback_target(url)
    base = url.rstrip("/")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    counts: Counter[str] = Counter()
    start = time.monotonic()
    until_ms = int((time.time() + duration) * 1000)
    for tick in itertools.count():
        due = start + tick / rate
        if due - start >= duration:
            break
        time.sleep(max(0.0, due - time.monotonic()))
        now_ms = int(time.time() * 1000)
        for body in plan(tick, channel, clean=clean, now_ms=now_ms, until_ms=until_ms):
            counts[f"http {post(base, body, headers)}"] += 1
        if tick % WS_EVERY == 0:
            try:
                counts["ws acks"] += websocket_session(host, port, channel, 3, headers)
            except (OSError, ValueError):
                counts["ws failed"] += 1
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the flags, run the load, print what the gateway answered."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the gateway (loopback)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds (default 60)")
    parser.add_argument("--rate", type=float, default=5.0, help="ticks per second (default 5)")
    parser.add_argument("--channel", default="demo", help="channel alias or ARN (default demo)")
    parser.add_argument("--clean", action="store_true", help="send only valid cues")
    parser.add_argument(
        "--token",
        default=os.environ.get("MG_LOAD_TOKEN"),
        help="API token, for a gateway that is not in --local-ivs mode (or MG_LOAD_TOKEN)",
    )
    args = parser.parse_args(argv)
    if not 0 < args.duration <= MAX_DURATION_S:
        parser.error(f"--duration must be in (0, {MAX_DURATION_S:g}]")
    if not 0 < args.rate <= MAX_RATE:
        parser.error(f"--rate must be in (0, {MAX_RATE:g}]")
    try:
        counts = run(
            args.url,
            duration=args.duration,
            rate=args.rate,
            channel=args.channel,
            clean=args.clean,
            token=args.token,
        )
    except NotLoopback as exc:
        print(f"load.py: {exc}", file=sys.stderr)
        return 2
    print(" ".join(f"{key}={value}" for key, value in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
