"""The demo pages of a gateway running a local IVS: `/viewer` and `/console`, and their assets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web

from metadata_gateway.running.appkeys import GATEWAY
from metadata_gateway.web.accept_times import AcceptTimes

STATIC_DIR = Path(str(resources.files("metadata_gateway.web") / "static"))
BUILD_DIR = STATIC_DIR / "build"  # written by `npm run build` in frontend/, never committed
# The files the build leaves; only these are served from it.
BUILD_FILES = {
    "viewer.js": "text/javascript",
    "amazon-ivs-wasmworker.min.js": "text/javascript",
    "amazon-ivs-wasmworker.min.wasm": "application/wasm",
}
MAX_IDS_PER_LOOKUP = 100  # a payload holds far fewer cues than this
IVS_TIMEOUT = aiohttp.ClientTimeout(total=5)
_NO_BUILD = """<!doctype html><meta charset="utf-8"><title>Viewer not built</title>
<h1>The viewer is not built</h1>
<p>Its player comes from npm. Build it once, then reload:</p>
<pre>cd frontend &amp;&amp; npm ci &amp;&amp; npm run build</pre>
"""


@dataclass(frozen=True, slots=True)
class Demo:
    """What the demo routes need: the local IVS's URL, a client for it, and the accept times."""

    local_ivs_url: str
    http: aiohttp.ClientSession
    accept_times: AcceptTimes


DEMO = web.AppKey("demo", Demo)


def _problem(status: int, code: str, message: str) -> web.Response:
    body = orjson.dumps({"error": {"code": code, "message": message}})
    return web.Response(status=status, body=body, content_type="application/json")


async def viewer_page(request: web.Request) -> web.StreamResponse:
    """`GET /viewer?channel=<alias or ARN>`: the demo player page."""
    if not (BUILD_DIR / "viewer.js").is_file():
        return web.Response(status=503, text=_NO_BUILD, content_type="text/html")
    return web.FileResponse(STATIC_DIR / "viewer.html", headers={"Cache-Control": "no-cache"})


async def console_page(request: web.Request) -> web.StreamResponse:
    """`GET /console`: the operator console (plain HTML and JS over the public API)."""
    return web.FileResponse(STATIC_DIR / "console.html", headers={"Cache-Control": "no-cache"})


async def build_file(request: web.Request) -> web.StreamResponse:
    """`GET /demo/build/<file>`: the viewer's bundle and the player's wasm worker."""
    name = request.match_info["name"]
    content_type = BUILD_FILES.get(name)
    path = BUILD_DIR / name
    if content_type is None or not path.is_file():
        return _problem(404, "not_found", f"no built file {name!r}; run `npm run build`")
    return web.FileResponse(path, headers={"Content-Type": content_type})


async def playback(request: web.Request) -> web.Response:
    """`GET /demo/api/playback?channel=`: the channel's ARN and playback URL, from the IVS."""
    gateway, demo = request.app[GATEWAY], request.app[DEMO]
    name = request.query.get("channel", "")
    arn = gateway.settings.resolve(name)
    if arn is None:
        return _problem(404, "unknown_channel", f"no channel is named {name!r}")
    # GetChannel as any IVS client sends it: the local IVS takes unsigned requests.
    try:
        async with demo.http.post(
            f"{demo.local_ivs_url}/GetChannel", json={"arn": arn}, timeout=IVS_TIMEOUT
        ) as answer:
            body = await answer.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as error:
        return _problem(502, "ivs_unreachable", f"GetChannel failed: {error!r}")
    if answer.status != 200:
        message = body.get("exceptionMessage", "") if isinstance(body, dict) else ""
        return _problem(502, "ivs_error", f"GetChannel failed ({answer.status}): {message}")
    channel = body["channel"]
    return web.json_response(
        {
            "channel": arn,
            "alias": gateway.aliases.get(arn),
            "name": channel.get("name", ""),
            "playbackUrl": channel["playbackUrl"],
        }
    )


async def accepted(request: web.Request) -> web.Response:
    """`GET /demo/api/accepted?channel=ARN&id=..`: when the gateway accepted these sent cues."""
    demo = request.app[DEMO]
    ids = request.query.getall("id", [])[:MAX_IDS_PER_LOOKUP]
    channel = request.query.get("channel", "")
    return web.json_response({"accepted": demo.accept_times.lookup(channel, ids)})


def add_demo_routes(app: web.Application, *, local_ivs_url: str) -> None:
    """Serve `/viewer` and `/console` on a gateway app whose cues go to the local IVS at the URL."""

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        # Runs after create_app's own context, so the gateway exists.
        gateway = app[GATEWAY]
        times = AcceptTimes(wall_clock=gateway.wall_clock)
        gateway.listeners.append(times)
        async with aiohttp.ClientSession() as http:
            app[DEMO] = Demo(local_ivs_url=local_ivs_url.rstrip("/"), http=http, accept_times=times)
            try:
                yield
            finally:
                gateway.listeners.remove(times)

    app.cleanup_ctx.append(lifetime)
    router = app.router
    router.add_get("/viewer", viewer_page)
    router.add_get("/console", console_page)
    router.add_get("/demo/build/{name}", build_file)
    router.add_get("/demo/api/playback", playback)
    router.add_get("/demo/api/accepted", accepted)
    router.add_static("/demo/static", STATIC_DIR, append_version=False)
