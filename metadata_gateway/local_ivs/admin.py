"""The `/_local/` admin API: simulated streams, recorded metadata, stats, faults and a viewer."""

from __future__ import annotations

import asyncio
import logging
import re

import orjson
from aiohttp import web

from metadata_gateway.local_ivs.errors import IvsError
from metadata_gateway.local_ivs.faults import Fault, FaultSpecError
from metadata_gateway.local_ivs.keys import STATE_KEY, state_of
from metadata_gateway.local_ivs.validation import check_channel_arn
from metadata_gateway.local_ivs.viewers import ViewerHub

logger = logging.getLogger(__name__)

VIEWERS_KEY = web.AppKey("local_ivs_viewers", ViewerHub)
# A comment line this often lets a viewer's write notice a client that went away, and keeps
# proxies from closing an idle stream.
KEEPALIVE_SECONDS = 15.0
_SSE_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _json(body: object, *, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def _problem(status: int, code: str, message: str) -> web.Response:
    return _json({"error": code, "message": message}, status=status)


def _ivs_problem(error: IvsError) -> web.Response:
    return _problem(error.status, error.name, error.message)


async def _json_body(request: web.Request) -> object:
    try:
        return orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise web.HTTPBadRequest(
            text=orjson.dumps(
                {"error": "BadRequest", "message": "the body is not valid JSON"}
            ).decode(),
            content_type="application/json",
        ) from None


async def start_stream(request: web.Request) -> web.Response:
    """`POST /_local/streams {"channelArn": ARN, "health"?: ...}`: the channel goes live."""
    body = await _json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("channelArn"), str):
        return _problem(400, "BadRequest", 'the body must be {"channelArn": "<channel ARN>"}')
    health = body.get("health", "HEALTHY")
    if not isinstance(health, str):
        return _problem(400, "BadRequest", "health must be a string")
    try:
        return _json(state_of(request).start_stream(body["channelArn"], health=health))
    except IvsError as error:
        return _ivs_problem(error)


async def get_metadata(request: web.Request) -> web.Response:
    """`GET /_local/metadata[?channelArn=ARN]`: accepted payloads in arrival order."""
    state = state_of(request)
    channel_arn = request.query.get("channelArn")
    events = state.events if channel_arn is None else state.events_of(channel_arn)
    return _json({"events": [event.to_json() for event in events]})


async def clear_metadata(request: web.Request) -> web.Response:
    """`DELETE /_local/metadata`: forget every recorded payload."""
    state_of(request).clear_events()
    return web.Response(status=204)


async def get_stats(request: web.Request) -> web.Response:
    """`GET /_local/stats`: per-operation answer counts."""
    return _json(state_of(request).stats())


async def clear_stats(request: web.Request) -> web.Response:
    """`DELETE /_local/stats`: reset the answer counts."""
    state_of(request).clear_stats()
    return web.Response(status=204)


async def set_fault(request: web.Request) -> web.Response:
    """`POST /_local/faults {...}`: inject errors, latency or disconnects into PutMetadata."""
    try:
        fault = Fault.from_json(await _json_body(request))
    except FaultSpecError as error:
        return _problem(400, "BadRequest", str(error))
    state_of(request).faults.set(fault)
    logger.info("fault injected: %s", fault)
    return _json({"fault": fault.to_json()})


async def get_faults(request: web.Request) -> web.Response:
    """`GET /_local/faults`: the active faults."""
    return _json({"faults": [fault.to_json() for fault in state_of(request).faults.faults]})


async def clear_faults(request: web.Request) -> web.Response:
    """`DELETE /_local/faults`: remove every fault."""
    state_of(request).faults.clear()
    return web.Response(status=204)


def sse_frame(metadata: str) -> bytes:
    """Return one Server-Sent Event carrying `metadata`, a `data:` line per line of it."""
    lines = _SSE_LINE_BREAK.split(metadata)
    return ("".join(f"data: {line}\n" for line in lines) + "\n").encode()


async def viewer(request: web.Request) -> web.StreamResponse:
    """`GET /_local/viewer?channelArn=ARN`: a channel's accepted metadata as Server-Sent Events."""
    state = state_of(request)
    channel_arn = request.query.get("channelArn", "")
    try:
        check_channel_arn("channelArn", channel_arn)
    except IvsError as error:
        return _ivs_problem(error)
    if not state.has_channel(channel_arn):
        return _problem(404, "ResourceNotFoundException", f"Resource: {channel_arn} not found")
    hub = request.app[VIEWERS_KEY]
    following = hub.open(channel_arn)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    try:
        await response.prepare(request)
        # Subscribed before this line is sent, so a client that has read it misses nothing.
        await response.write(b": following " + channel_arn.encode() + b"\n\n")
        while True:
            try:
                async with asyncio.timeout(KEEPALIVE_SECONDS):
                    event = await following.next_event()
            except TimeoutError:
                await response.write(b": keepalive\n\n")
                continue
            if event is None:
                break
            await response.write(sse_frame(event.metadata))
    except ConnectionResetError:
        logger.debug("viewer of %s disconnected", channel_arn)
    finally:
        hub.release(following)
    return response


async def _close_viewers(app: web.Application) -> None:
    app[VIEWERS_KEY].close_all()


def add_routes(app: web.Application) -> None:
    """Register the `/_local/` routes and the viewer hub that shutdown closes."""
    app[VIEWERS_KEY] = ViewerHub(app[STATE_KEY])
    app.on_shutdown.append(_close_viewers)
    router = app.router
    router.add_post("/_local/streams", start_stream)
    router.add_get("/_local/metadata", get_metadata, allow_head=False)
    router.add_delete("/_local/metadata", clear_metadata)
    router.add_get("/_local/stats", get_stats, allow_head=False)
    router.add_delete("/_local/stats", clear_stats)
    router.add_post("/_local/faults", set_fault)
    router.add_get("/_local/faults", get_faults, allow_head=False)
    router.add_delete("/_local/faults", clear_faults)
    router.add_get("/_local/viewer", viewer, allow_head=False)
