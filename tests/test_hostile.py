"""Hostile clients against a `serve --local-ivs` process, over real sockets on 127.0.0.1.

Oversized, malformed and deeply nested bodies, huge headers, slow and idle connections, bad
WebSocket frames, then a bounded fuzz loop (`MG_FUZZ_REQUESTS`, default 2,000; the `slow` test,
with MG_RUN_SLOW=1, sends 100,000) that must get no 5xx while the process's memory stays flat.
Figures (requests fuzzed, RSS) are printed; run with `-s` to see them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import random
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
import pytest
from gateway_process import GatewayProcess, start_gateway, stop_gateway

TOKEN = "mgw_hostile-token-for-tests-only"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RUN_SLOW = os.environ.get("MG_RUN_SLOW") == "1"
SEED = int(os.environ.get("MG_FUZZ_SEED", "20200714"))
FUZZ_REQUESTS = int(os.environ.get("MG_FUZZ_REQUESTS", "2000"))
SLOW_FUZZ_REQUESTS = int(os.environ.get("MG_FUZZ_SLOW_REQUESTS", "100000"))
MAX_BODY = 256 * 1024  # the gateway's default max_body_bytes
MAX_FUZZ_BODY = 2 * MAX_BODY  # larger ones are refused the same way, and aiohttp warns of them
MAX_RSS_GROWTH_MB = 20.0  # after warm-up, over the whole fuzz loop

# Settings the hostile gateway runs with. KEEPALIVE_TIMEOUT and BODY_TIMEOUT bound how long a
# connection may idle, dribble its headers or dribble its body; the gateway must cut such a
# client off within the setting plus SLACK_S.
# Short, so the slow-client tests are quick, yet 2 s: under load on 2 cores a fuzzed request on a
# fresh connection once took over 1 s to be read, and the gateway rightly cut it off.
KEEPALIVE_TIMEOUT_S = 2.0
BODY_TIMEOUT_S = 2.0

WS_HEARTBEAT_S = 1.0
SLACK_S = 2.0
GATEWAY_ENV = {
    "MG_KEEPALIVE_TIMEOUT": str(KEEPALIVE_TIMEOUT_S),
    "MG_BODY_TIMEOUT": str(BODY_TIMEOUT_S),
    "MG_WS_HEARTBEAT": str(WS_HEARTBEAT_S),
    "MG_DRAIN_TIMEOUT": "1",
    "MG_LOG_LEVEL": "info",
}
# The fuzz loop asks a different question (no 5xx, an answer to every frame, flat memory) of a
# gateway with its default connection timeouts: with 1-2 s ones, a machine loaded by more than
# one busy core cut off fuzzed requests and missed heartbeats, as those settings say it must.
FUZZ_GATEWAY_ENV = {"MG_DRAIN_TIMEOUT": "1", "MG_LOG_LEVEL": "info"}


# ---- the gateway process -----------------------------------------------------------------


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """One gateway process for the module, stopped with SIGTERM (SIGKILL after 10 s)."""
    started = start_gateway(
        tmp_path_factory.mktemp("hostile"), token=TOKEN, name="hostile", env=GATEWAY_ENV
    )
    try:
        yield started
    finally:
        stop_gateway(started)


@pytest.fixture(scope="module")
def fuzz_gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """The fuzz loop's gateway process, with the default connection timeouts."""
    started = start_gateway(
        tmp_path_factory.mktemp("fuzz"), token=TOKEN, name="hostile", env=FUZZ_GATEWAY_ENV
    )
    try:
        yield started
    finally:
        stop_gateway(started)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session that sends the token."""
    async with aiohttp.ClientSession(headers=AUTH) as session:
        yield session


async def assert_serving(gw: GatewayProcess) -> None:
    """The process is alive and answers /healthz."""
    assert gw.process.poll() is None, "the gateway process died"
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{gw.url}/healthz", timeout=aiohttp.ClientTimeout(total=5)) as response,
    ):
        assert response.status == 200


# ---- raw sockets -------------------------------------------------------------------------


@dataclass
class RawAnswer:
    """What came back on a raw connection: a status (None if none) and whether it closed."""

    status: int | None
    head: bytes = b""
    body: bytes = b""
    closed: bool = False


async def read_answer(reader: asyncio.StreamReader, within: float) -> RawAnswer:
    """Read one HTTP response (or the connection's end) for at most `within` seconds."""
    data = b""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while b"\r\n\r\n" not in data:
        try:
            chunk = await asyncio.wait_for(reader.read(65536), max(0.0, deadline - loop.time()))
        except (TimeoutError, ConnectionError):
            return RawAnswer(None, data, closed=False)
        if not chunk:
            return RawAnswer(None, data, closed=True)
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")[1:]
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    with contextlib.suppress(TimeoutError, ConnectionError, asyncio.IncompleteReadError):
        body += await asyncio.wait_for(
            reader.readexactly(max(0, length - len(body))), max(0.1, deadline - loop.time())
        )
    return RawAnswer(status, head, body)


async def raw_request(gw: GatewayProcess, data: bytes, *, within: float = 10.0) -> RawAnswer:
    """Send `data` on a new connection (ignoring a reset mid-send) and read the answer."""
    reader, writer = await asyncio.open_connection(*gw.address)
    try:
        writer.write(data)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        return await read_answer(reader, within)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def post_head(length: int | None = None, *, extra: bytes = b"") -> bytes:
    """The head of a POST /v1/cues with the token, and a Content-Length or chunked body."""
    framing = b"Transfer-Encoding: chunked" if length is None else b"Content-Length: %d" % length
    return (
        b"POST /v1/cues HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {TOKEN}\r\n".encode()
        + extra
        + framing
        + b"\r\n\r\n"
    )


def chunked(body: bytes, size: int = 16384) -> bytes:
    """`body` in HTTP/1.1 chunks of `size` bytes, with the last chunk."""
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"


def error_code(answer: RawAnswer) -> str:
    code: str = orjson.loads(answer.body)["error"]["code"]
    return code


# ---- bodies ------------------------------------------------------------------------------

GOOD_CUE = {"channel": "demo", "type": "quiz", "data": {"question_id": "q1"}}


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(post_head(50_000_000) + b"[" * 4096, id="content-length-50MB-partly-sent"),
        pytest.param(
            post_head(MAX_BODY + 1) + b" " * (MAX_BODY + 1), id="content-length-just-over"
        ),
        pytest.param(post_head() + chunked(b" " * (MAX_BODY + 1)), id="chunked-just-over"),
        pytest.param(post_head() + chunked(b"[" * (4 * MAX_BODY)), id="chunked-4x"),
    ],
)
async def test_oversized_bodies_are_refused_with_413(
    gw: GatewayProcess, request_bytes: bytes
) -> None:
    """A body over max_body_bytes, announced or chunked, is 413 body_too_large; nothing breaks."""
    answer = await raw_request(gw, request_bytes)
    assert answer.status == 413, answer
    assert error_code(answer) == "body_too_large"
    await assert_serving(gw)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{nope", id="malformed"),
        pytest.param(b"", id="empty"),
        pytest.param(
            b'{"channel":"demo","type":"quiz","data":{"question_id":"\xff\xfe"}}', id="utf8"
        ),
        pytest.param(b"\xc3\x28\xa0\xa1\xe2\x28\xa1\xf0\x28\x8c\xbc", id="utf8-only"),
        pytest.param(b"[" * 100_000, id="100k-open-brackets"),
        pytest.param(b'{"a":' * 30_000 + b"1" + b"}" * 30_000, id="30k-nested-objects"),
        pytest.param(b"\x00" * 1000, id="nul-bytes"),
        pytest.param(orjson.dumps(GOOD_CUE) + b"garbage", id="trailing-garbage"),
    ],
)
async def test_malformed_bodies_are_invalid_json(gw: GatewayProcess, body: bytes) -> None:
    """Not JSON, not UTF-8 or nested past the parser's depth: 400 invalid_json."""
    answer = await raw_request(gw, post_head(len(body)) + body)
    assert (answer.status, error_code(answer)) == (400, "invalid_json"), answer


async def test_deep_nesting_inside_a_cue_is_an_invalid_cue(gw: GatewayProcess) -> None:
    """Data nested deeper than the envelope encoder allows is 400 invalid_cue, field data."""
    deep = b'{"channel":"demo","type":"custom","data":{"x":' + b"[" * 600 + b"]" * 600 + b"}}"
    answer = await raw_request(gw, post_head(len(deep)) + deep)
    assert answer.status == 400, answer
    assert orjson.loads(answer.body)["error"]["field"] == "data"


async def test_undecodable_content_encoding_is_a_client_error(
    gw: GatewayProcess, http: aiohttp.ClientSession
) -> None:
    """A body that its Content-Encoding cannot decode is a 4xx, never a 500."""
    for encoding in ("gzip", "deflate", "br"):
        async with http.post(
            f"{gw.url}/v1/cues", data=b"not compressed", headers={"Content-Encoding": encoding}
        ) as response:
            assert 400 <= response.status < 500, (encoding, response.status)
    await assert_serving(gw)


# ---- headers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
            id="100KB-header-value",
        ),
        pytest.param(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-" + b"n" * 20_000 + b": 1\r\n\r\n",
            id="20KB-header-name",
        ),
        pytest.param(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-%d: 1\r\n" % n for n in range(1000))
            + b"\r\n",
            id="1000-headers",
        ),
        pytest.param(b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", id="100KB-url"),
        pytest.param(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n" + b" b\r\n" * 5000 + b"\r\n",
            id="5000-folded-lines",
        ),
    ],
)
async def test_huge_headers_are_refused_and_the_server_goes_on(
    gw: GatewayProcess, request_bytes: bytes
) -> None:
    """Headers past aiohttp's line, field and count limits get 400 or 431, never a crash."""
    answer = await raw_request(gw, request_bytes)
    assert answer.status in (400, 431), answer
    await assert_serving(gw)


async def test_malformed_http_is_not_logged_as_a_server_error(gw: GatewayProcess) -> None:
    """Client mistakes (bad framing, huge headers) do not put error tracebacks in the log."""
    before = len(gw.error_records())
    for request_bytes in (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10_000 + b"\r\n\r\n",
        post_head() + b"zz\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    ):
        await raw_request(gw, request_bytes, within=3)
    await asyncio.sleep(0.2)
    assert gw.error_records()[before:] == []


# ---- slow and idle clients ---------------------------------------------------------------


async def dribble(
    gw: GatewayProcess, head: bytes, trickle: bytes, *, every: float, within: float
) -> tuple[RawAnswer, float]:
    """Send `head`, then `trickle` a byte at a time; return what the server did, and when."""
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection(*gw.address)
    started = loop.time()
    try:
        writer.write(head)
        for byte in trickle:
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                return RawAnswer(None, closed=True), loop.time() - started
            answer = await read_answer(reader, every)
            if answer.closed or answer.status is not None:
                return answer, loop.time() - started
            if loop.time() - started > within:
                break
        return RawAnswer(None), loop.time() - started
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_slowloris_headers_are_cut_off(gw: GatewayProcess) -> None:
    """A client that sends its headers a byte at a time is disconnected (or answered) in time."""
    bound = KEEPALIVE_TIMEOUT_S + SLACK_S
    answer, after = await dribble(
        gw,
        b"POST /v1/cues HTTP/1.1\r\nHost: 127.0.0.1\r\n",
        b"X-Slow: " + b"a" * 1000,
        every=0.5,
        within=bound,
    )
    assert answer.closed or answer.status is not None, (
        f"the gateway still reads the headers after {after:.1f} s (bound {bound} s)"
    )
    assert after <= bound + 0.5
    await assert_serving(gw)


async def test_slow_body_is_cut_off(gw: GatewayProcess) -> None:
    """A client that sends its body a byte at a time is answered or disconnected in time."""
    bound = BODY_TIMEOUT_S + SLACK_S
    answer, after = await dribble(gw, post_head(1000), b"[" * 1000, every=0.5, within=bound)
    assert answer.closed or answer.status is not None, (
        f"the gateway still reads the body after {after:.1f} s (bound {bound} s)"
    )
    assert after <= bound + 0.5
    await assert_serving(gw)


@pytest.mark.parametrize("first_request", [b"", b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"])
async def test_idle_connections_are_closed(gw: GatewayProcess, first_request: bytes) -> None:
    """A connection that sends nothing, or nothing after a request, is closed in time."""
    bound = KEEPALIVE_TIMEOUT_S + SLACK_S
    reader, writer = await asyncio.open_connection(*gw.address)
    try:
        if first_request:
            writer.write(first_request)
            assert (await read_answer(reader, 5)).status == 200
        answer = await read_answer(reader, bound)
        assert answer.closed, f"an idle connection is still open after {bound} s"
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_websocket_peer_that_never_answers_pings_is_closed(gw: GatewayProcess) -> None:
    """A raw client that upgrades, then reads nothing and answers no ping, is dropped in time."""
    key = base64.b64encode(os.urandom(16))
    upgrade = (
        b"GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "
        + key
        + b"\r\n"
        + f"Authorization: Bearer {TOKEN}\r\n\r\n".encode()
    )
    reader, writer = await asyncio.open_connection(*gw.address)
    try:
        writer.write(upgrade)
        assert (await read_answer(reader, 5)).status == 101
        deadline = asyncio.get_running_loop().time() + 2 * WS_HEARTBEAT_S + SLACK_S
        while True:  # pings arrive and are never answered
            remaining = deadline - asyncio.get_running_loop().time()
            assert remaining > 0, "the gateway keeps a WebSocket that answers no ping"
            with contextlib.suppress(TimeoutError):
                if not await asyncio.wait_for(reader.read(4096), remaining):
                    break
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


# ---- WebSocket frames --------------------------------------------------------------------


async def receive(ws: aiohttp.ClientWebSocketResponse, within: float = 5.0) -> dict[str, Any]:
    """The next JSON message, within `within` seconds in all.

    `receive(timeout=...)` would restart its timeout at every ping the gateway sends.
    """
    async with asyncio.timeout(within):
        message = await ws.receive()
    assert message.type is aiohttp.WSMsgType.TEXT, (message, ws.close_code)
    frame: dict[str, Any] = orjson.loads(message.data)
    return frame


async def next_answer(ws: aiohttp.ClientWebSocketResponse, within: float = 5.0) -> dict[str, Any]:
    """The next ack or nack (receipts in between are skipped)."""
    async with asyncio.timeout(within):
        while True:
            frame = await receive(ws, within)
            if frame["op"] in ("ack", "nack"):
                return frame


async def test_hostile_websocket_frames_get_nacks_and_the_connection_stays(
    gw: GatewayProcess, http: aiohttp.ClientSession
) -> None:
    """Bad frames (not JSON, binary, deep, oversized) each get a nack; the connection stays."""
    frames: list[tuple[str | bytes, str]] = [
        ("{nope", "invalid_json"),
        (b"\xff\xfe\x00garbage", "invalid_json"),
        ("[" * 100_000, "invalid_json"),
        ("[]", "invalid_json"),
        ('{"op":"cue","ref":1}', "invalid_cue"),
        ('{"op":"cues","ref":2,"cues":' + "[" * 200 + "]" * 200 + "}", "invalid_cue"),
        ('{"op":"cancel","ref":3}', "invalid_request"),
        ('{"op":null}', "invalid_op"),
        (" " * (MAX_BODY + 1), "body_too_large"),
    ]
    async with http.ws_connect(f"{gw.url}/v1/ws") as ws:
        for frame, code in frames:
            if isinstance(frame, bytes):
                await ws.send_bytes(frame)
            else:
                await ws.send_str(frame)
            answer = await next_answer(ws)
            assert (answer["op"], answer["error"]["code"]) == ("nack", code), frame[:40]
        await ws.send_str(orjson.dumps({"op": "cue", "ref": "ok", **GOOD_CUE}).decode())
        assert (await next_answer(ws))["op"] == "ack"
    await assert_serving(gw)


async def test_websocket_frame_with_a_deeply_nested_ref_gets_a_nack(
    gw: GatewayProcess, http: aiohttp.ClientSession
) -> None:
    """A `ref` nested deeper than the encoder allows is answered by a nack, not a dropped socket."""
    async with http.ws_connect(f"{gw.url}/v1/ws") as ws:
        await ws.send_str('{"op":"cue","ref":' + "[" * 300 + "]" * 300 + "}")
        answer = await next_answer(ws)
        assert answer["op"] == "nack"
        await ws.send_str(orjson.dumps({"op": "cue", "ref": 2, **GOOD_CUE}).decode())
        assert (await next_answer(ws))["op"] == "ack"


async def test_websocket_frames_past_the_hard_limit_or_not_utf8_close_the_connection(
    gw: GatewayProcess, http: aiohttp.ClientSession
) -> None:
    """A frame over 4x max_body_bytes closes with 1009; a text frame that is not UTF-8 with 1007."""
    async with http.ws_connect(f"{gw.url}/v1/ws", max_msg_size=0) as ws:
        await ws.send_str(" " * (4 * MAX_BODY + 1))
        async with asyncio.timeout(5):
            message = await ws.receive()
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == 1009
    async with http.ws_connect(f"{gw.url}/v1/ws") as ws:
        await ws.send_frame(b'{"op":"\xff"}', aiohttp.WSMsgType.TEXT)
        async with asyncio.timeout(5):
            message = await ws.receive()
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == 1007
    await assert_serving(gw)


async def test_cue_for_an_arn_whose_region_botocore_refuses_is_settled(
    gw: GatewayProcess, http: aiohttp.ClientSession
) -> None:
    """A well-formed ARN with a region botocore rejects is refused or dropped, never stuck."""
    async with http.ws_connect(f"{gw.url}/v1/ws") as ws:
        cue = {**GOOD_CUE, "channel": "arn:aws:ivs:-:123456789012:channel/hostile1", "id": "r1"}
        await ws.send_str(orjson.dumps({"op": "cue", "ref": 1, **cue}).decode())
        answer = await next_answer(ws)
        if answer["op"] == "ack":
            try:
                receipt = await receive(ws, 5)
            except TimeoutError:
                raise AssertionError("acked, then neither sent nor dropped within 5 s") from None
            assert receipt["op"] in ("sent", "dropped")


async def wait_until_idle(gw: GatewayProcess, http: aiohttp.ClientSession) -> None:
    """Return once the gateway holds no queued cue."""
    deadline = time.monotonic() + 30
    while True:
        async with http.get(f"{gw.url}/metrics") as response:
            text = await response.text()
        queued = re.search(r"^metadata_gateway_queued_cues (\S+)$", text, re.MULTILINE)
        if queued is not None and float(queued.group(1)) == 0:
            return
        assert time.monotonic() < deadline, "cues still queued after 30 s"
        await asyncio.sleep(0.05)


async def test_arbitrary_channel_arns_do_not_grow_memory_without_bound(
    gw: GatewayProcess, http: aiohttp.ClientSession
) -> None:
    """Cues for 500 ARNs in 50 made-up regions and 250 new accounts cost under 20 MB in all."""
    rng = random.Random(SEED)
    await http.post(f"{gw.url}/v1/cues", json=GOOD_CUE)
    before = gw.rss_mb()
    made_up = [f"zz-{rng.choice(['north', 'south', 'east'])}-{n}" for n in range(50)]
    statuses: Counter[int] = Counter()
    for batch in range(10):
        size = 50 if batch % 2 else 100  # 5 batches of 50 in us-west-2, 5 of 100 made up
        cues = [
            {
                **GOOD_CUE,
                "channel": f"arn:aws:ivs:{'us-west-2' if batch % 2 else rng.choice(made_up)}:"
                f"{rng.randrange(10**12):012d}:channel/{rng.randbytes(6).hex()}",
            }
            for _ in range(size)
        ]
        async with http.post(f"{gw.url}/v1/cues", json={"cues": cues}) as response:
            statuses[response.status] += 1
    await wait_until_idle(gw, http)  # every call for them went out and failed
    after = gw.rss_mb()
    print(f"\n750 made-up channels: statuses {dict(statuses)}, RSS {before:.1f} -> {after:.1f} MB")
    assert set(statuses) <= {202, 400}
    assert after - before < MAX_RSS_GROWTH_MB
    await assert_serving(gw)


# ---- the fuzz loop -----------------------------------------------------------------------

CUES: list[dict[str, Any]] = [
    GOOD_CUE,
    {"channel": "demo", "type": "poll", "data": {"poll_id": "p1", "yes": 3}},
    {"channel": "demo", "type": "caption", "data": {"text": "héllo 世界 🎉", "final": False}},
    {"channel": "demo", "type": "custom", "data": {"a": [1, 2.5, None, True]}, "key": "k"},
    {"channel": "demo", "type": "raw", "data": "raw text"},
    {"channel": "demo", "type": "state", "key": "quiz:current", "data": {"q": 1}},
    {"channel": "demo", "type": "quiz", "data": {"question_id": "q2"}, "not_before": 0},
    {"channel": "demo", "type": "quiz", "data": {"question_id": "q3"}, "priority": "high"},
]
CHANNELS = [
    "demo",
    "nobody",
    "",
    "arn:aws:ivs:us-west-2:123456789012:channel/fuzz0001",
    "arn:aws:ivs:eu-west-1:000000000001:channel/fuzz0002",
    "arn:aws:ivs:x",
    "arn:aws:ivs:us-west-2:123456789012:channel/",
    "ARN:AWS:IVS:US-WEST-2:1:CHANNEL/X",
]
STRINGS = ["", "a", "é" * 300, "🎉" * 300, "\x00", "\ud7ff", "x" * 5000, "2026-11-28T20:14:30Z"]


@dataclass
class Fuzzer:
    """Makes random and mutated requests from valid ones, from one seed."""

    rng: random.Random

    def value(self, depth: int = 0) -> Any:
        """A random JSON value: scalars, odd strings, huge and negative numbers, containers."""
        rng = self.rng
        pick = rng.randrange(10 if depth < 3 else 6)
        if pick == 0:
            return None
        if pick == 1:
            return rng.choice([True, False])
        if pick == 2:
            return rng.choice([0, -1, 1, 2**31, 2**63 - 1, -(2**63), 2**64 - 1, 10**15])
        if pick == 3:
            return rng.choice([0.5, -1e308, 1e-300, 3.0])
        if pick in (4, 5):
            return rng.choice([*STRINGS, *CHANNELS, *(c["type"] for c in CUES)])
        if pick in (6, 7):
            return [self.value(depth + 1) for _ in range(rng.randrange(4))]
        return {rng.choice(["channel", "type", "data", "id", "x"]): self.value(depth + 1)}

    def cue(self) -> Any:
        """A valid cue, then a few structural mutations."""
        rng = self.rng
        cue = dict(rng.choice(CUES))
        if rng.random() < 0.5:
            cue["id"] = rng.choice([f"id{rng.randrange(500)}", *STRINGS])
        for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
            if not isinstance(cue, dict):
                break
            mutation = rng.randrange(6)
            name = rng.choice(["channel", "type", "data", "id", "key", "ttl_ms", "priority",
                               "not_before", "repeat_ms", "op", "ref"])  # fmt: skip
            if mutation == 0:
                cue.pop(name, None)
            elif mutation == 1:
                cue[name] = self.value()
            elif mutation == 2:
                cue["channel"] = rng.choice(CHANNELS)
            elif mutation == 3:
                cue[name] = self.nested(rng.choice([10, 250, 300, 2000]))
            elif mutation == 4:
                cue["data"] = {"s": rng.choice(STRINGS) * rng.randrange(1, 60)}
            else:
                cue = self.value()
        return cue

    def nested(self, depth: int) -> Any:
        value: Any = 1
        for _ in range(depth):
            value = [value] if self.rng.random() < 0.5 else {"n": value}
        return value

    def document(self) -> Any:
        rng = self.rng
        if rng.random() < 0.3:
            return {"cues": [self.cue() for _ in range(rng.choice([0, 1, 2, 50, 100, 101]))]}
        return self.cue()

    def body(self) -> bytes:
        """A document's bytes, sometimes damaged: flipped, cut, spliced or not UTF-8."""
        rng = self.rng
        try:
            data = orjson.dumps(self.document())
        except TypeError:  # nested past orjson's encoder: send it by hand
            data = b'{"channel":"demo","type":"custom","data":' + b"[" * 300 + b"]" * 300 + b"}"
        damage = rng.randrange(8)
        if damage == 0 and data:
            at = rng.randrange(len(data))
            data = data[:at] + bytes([rng.randrange(256)]) + data[at + 1 :]
        elif damage == 1:
            data = data[: rng.randrange(len(data) + 1)]
        elif damage == 2:
            at = rng.randrange(len(data) + 1)
            data = data[:at] + rng.randbytes(rng.randrange(1, 16)) + data[at:]
        elif damage == 3:
            data = data * rng.randrange(2, 4)
        return data[:MAX_FUZZ_BODY]

    def http_request(self) -> tuple[str, str, dict[str, str], bytes]:
        """Mostly POST /v1/cues; sometimes a cancel, a listing or a lookup with odd values."""
        rng = self.rng
        headers = dict(AUTH) if rng.random() < 0.95 else {}
        if rng.random() < 0.1:
            headers["Content-Type"] = rng.choice(["text/plain", "application/x-www-form", "x/y"])
        pick = rng.random()
        if pick < 0.8:
            body = self.body()
            # A body its Content-Encoding cannot decode is refused at its first bytes and the
            # connection closed, so keep those small: the answer must arrive before the upload ends.
            if rng.random() < 0.02 and len(body) < 16384:
                headers["Content-Encoding"] = rng.choice(["gzip", "deflate", "identity", "x-nope"])
            return "POST", "/v1/cues", headers, body
        name = quote(str(self.value()), safe="")
        if pick < 0.87:
            channel = quote(rng.choice(CHANNELS))
            return "DELETE", f"/v1/cues/{name or 'x'}?channel={channel}", headers, b""
        if pick < 0.94:
            cursor = quote(str(self.value()))
            return "GET", f"/v1/channels?limit={name}&cursor={cursor}", headers, b""
        return "GET", f"/v1/channels/{name or 'demo'}", headers, b""

    def frame(self) -> bytes:
        """A WebSocket frame: a cue, a batch or a cancel with an op and a ref, maybe damaged."""
        rng = self.rng
        op = rng.choice(["cue", "cues", "cancel", "cue", "nope"])
        document = self.document()
        if isinstance(document, dict):
            frame = {"op": op, "ref": self.value(), **document}
            with contextlib.suppress(TypeError):
                return orjson.dumps(frame)
        return self.body()


@dataclass
class FuzzReport:
    """What a fuzz run saw."""

    statuses: Counter[int] = field(default_factory=Counter)
    ws_answers: Counter[str] = field(default_factory=Counter)
    ws_closes: Counter[int | None] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    rss_warm_mb: float = 0.0
    rss_max_mb: float = 0.0


async def fuzz_http(
    gw: GatewayProcess, fuzzer: Fuzzer, count: int, report: FuzzReport, *, workers: int = 8
) -> None:
    """`count` requests from `workers` keep-alive clients; note statuses and RSS as they go."""
    requests = iter(range(count))
    warm_up = max(200, count // 10)
    timeout = aiohttp.ClientTimeout(total=15)

    async def worker(session: aiohttp.ClientSession) -> None:
        for n in requests:
            method, path, headers, body = fuzzer.http_request()
            try:
                async with session.request(
                    method, f"{gw.url}{path}", headers=headers, data=body
                ) as response:
                    await response.read()
                    report.statuses[response.status] += 1
                    if response.status >= 500:
                        report.errors.append(
                            f"{response.status} for {method} {path} {headers} {body[:200]!r}"
                        )
            except (aiohttp.ClientError, TimeoutError) as exc:
                report.errors.append(f"{exc!r} for {method} {path} {headers} {body[:200]!r}")
            if n == warm_up:
                report.rss_warm_mb = gw.rss_mb()
            if n % 100 == 0:
                report.rss_max_mb = max(report.rss_max_mb, gw.rss_mb())

    # A connection per request: a reused one may be closed by the gateway's keep-alive timeout
    # just as a request goes out, which no server can help.
    connector = aiohttp.TCPConnector(limit=workers, force_close=True)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(workers)))


async def fuzz_websocket(
    gw: GatewayProcess, fuzzer: Fuzzer, count: int, report: FuzzReport
) -> None:
    """`count` frames, each answered by one ack or nack; a closed connection is reopened."""
    sent = 0
    async with aiohttp.ClientSession(headers=AUTH) as session:
        while sent < count:
            async with session.ws_connect(f"{gw.url}/v1/ws", max_msg_size=0) as ws:
                while sent < count and not ws.closed:
                    frame = fuzzer.frame()
                    sent += 1
                    if fuzzer.rng.random() < 0.5:
                        await ws.send_bytes(frame)
                    else:
                        await ws.send_str(frame.decode(errors="replace"))
                    try:
                        answer = await next_answer(ws)
                    except AssertionError:
                        report.ws_closes[ws.close_code] += 1
                        if ws.close_code not in (1009,):
                            report.errors.append(f"ws closed {ws.close_code} after {frame[:200]!r}")
                        break
                    except TimeoutError:
                        report.errors.append(f"no answer to frame {frame[:200]!r}")
                        break
                    report.ws_answers[answer.get("error", {}).get("code", answer["op"])] += 1


async def run_fuzz(gw: GatewayProcess, count: int) -> FuzzReport:
    """A fuzz run of `count` messages, three quarters HTTP requests and a quarter WS frames."""
    report = FuzzReport()
    started = time.monotonic()
    fuzzer = Fuzzer(random.Random(SEED))
    rss_start = gw.rss_mb()
    await asyncio.gather(
        fuzz_http(gw, fuzzer, count - count // 4, report),
        fuzz_websocket(gw, fuzzer, count // 4, report),
    )
    await assert_serving(gw)
    elapsed = time.monotonic() - started
    print(
        f"\nfuzzed {count - count // 4} HTTP requests and {count // 4} WebSocket frames "
        f"in {elapsed:.1f} s (seed {SEED})\n"
        f"  HTTP statuses: {dict(sorted(report.statuses.items()))}\n"
        f"  WebSocket answers: {dict(report.ws_answers.most_common())}; "
        f"closes: {dict(report.ws_closes)}\n"
        f"  RSS: start {rss_start:.1f} MB, after warm-up {report.rss_warm_mb:.1f} MB, "
        f"max sampled {report.rss_max_mb:.1f} MB, end {gw.rss_mb():.1f} MB, "
        f"process peak (VmHWM) {gw.peak_rss_mb():.1f} MB"
    )
    return report


def check(report: FuzzReport) -> None:
    assert report.errors == [], report.errors[:10]
    growth = report.rss_max_mb - report.rss_warm_mb
    assert growth < MAX_RSS_GROWTH_MB, f"RSS grew {growth:.1f} MB after warm-up"


async def test_fuzzed_requests_and_frames_get_no_5xx_and_memory_stays_flat(
    fuzz_gw: GatewayProcess,
) -> None:
    """Fuzzed requests and frames get no 5xx, every frame an answer, and RSS stays flat."""
    check(await run_fuzz(fuzz_gw, FUZZ_REQUESTS))


@pytest.mark.slow
@pytest.mark.timeout(4 * 3600)
@pytest.mark.skipif(not RUN_SLOW, reason="the long fuzz run needs MG_RUN_SLOW=1")
async def test_long_fuzz_gets_no_5xx_and_memory_stays_flat(fuzz_gw: GatewayProcess) -> None:
    """The same over MG_FUZZ_SLOW_REQUESTS (100,000) requests and frames."""
    check(await run_fuzz(fuzz_gw, SLOW_FUZZ_REQUESTS))


async def test_after_all_of_it_the_gateway_serves_and_logged_no_error(
    gw: GatewayProcess, fuzz_gw: GatewayProcess, http: aiohttp.ClientSession
) -> None:
    """Both processes still take cues, and their logs have no error or traceback from any of
    this."""
    for process in (gw, fuzz_gw):
        async with http.post(f"{process.url}/v1/cues", json=GOOD_CUE) as response:
            assert response.status == 202
        rss, peak = process.rss_mb(), process.peak_rss_mb()
        print(f"\ngateway RSS at the end: {rss:.1f} MB, peak {peak:.1f} MB")
        messages = Counter(str(r.get("message"))[:120] for r in process.error_records())
        assert not messages, messages.most_common(10)
