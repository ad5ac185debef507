"""The ingress baseline: a bare aiohttp app that parses each cue's JSON and answers 202 or an ack.

It does what any aiohttp service must do for the same request (read, parse, answer with a body
of the gateway's shape) and nothing more, so the gateway's figure divided by this one is the
share of the framework's capacity the gateway keeps.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

import orjson
from aiohttp import WSMsgType, web


def _answer(document: Any) -> dict[str, Any]:
    channel = document.get("channel") if isinstance(document, dict) else None
    return {"id": "bare", "channel": channel, "status": "queued"}


async def post_cues(request: web.Request) -> web.Response:
    """Parse the body and answer 202 with a body of the gateway's shape."""
    document = orjson.loads(await request.read())
    return web.Response(
        body=orjson.dumps({"cues": [_answer(document)]}),
        status=202,
        content_type="application/json",
    )


async def websocket(request: web.Request) -> web.WebSocketResponse:
    """Parse each frame and answer it with an ack of the gateway's shape."""
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for message in ws:
        if message.type is WSMsgType.TEXT:
            frame = orjson.loads(message.data)
            ack = {"op": "ack", "ref": frame.get("ref"), "cues": [_answer(frame)]}
            await ws.send_frame(orjson.dumps(ack), WSMsgType.TEXT)
    return ws


def create_app() -> web.Application:
    """The two routes the ingress scenario drives."""
    app = web.Application()
    app.router.add_post("/v1/cues", post_cues)
    app.router.add_get("/v1/ws", websocket)
    return app


async def serve(port: int) -> None:
    """Serve on 127.0.0.1 until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runner = web.AppRunner(create_app(), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        host, bound = runner.addresses[0][:2]
        print(f"bare server listening on http://{host}:{bound}", file=sys.stderr, flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    """`python -m bench.bare_server --port P`."""
    parser = argparse.ArgumentParser(prog="python -m bench.bare_server")
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
