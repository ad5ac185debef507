"""The HTTP API: cues in, channel state and health out. aiohttp lives here and in app.py."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from typing import Any

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from metadata_gateway.appkeys import AUTH, GATEWAY, INTAKE, METRICS
from metadata_gateway.auth import TokenSpec
from metadata_gateway.channel import Channel
from metadata_gateway.cues import Cue, resolve_channel
from metadata_gateway.errors import CueError
from metadata_gateway.gateway import Gateway
from metadata_gateway.ingress import accept_document, decode_json, reject
from metadata_gateway.intake import Intake
from metadata_gateway.metrics import CONTENT_TYPE

routes = web.RouteTableDef()
DEFAULT_PAGE = 100
MAX_PAGE = 1000


def json_response(
    body: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A response with an orjson-encoded body."""
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json", headers=headers
    )


def error_response(error: CueError) -> web.Response:
    """The response for a refused request, with `Retry-After` where waiting helps."""
    headers = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    return json_response({"error": error.body()}, status=error.status, headers=headers)


@web.middleware
async def errors_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every error, ours or aiohttp's (404, 405, 413), answers with the same JSON shape."""
    try:
        return await handler(request)
    except CueError as exc:
        response = error_response(exc)
        if exc.close_connection:
            response.force_close()
        return response
    except web.HTTPRequestEntityTooLarge as exc:
        return error_response(CueError("body_too_large", exc.text or "", status=413))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        return json_response(
            {"error": {"code": code, "message": exc.reason}},
            status=exc.status,
            headers={k: v for k, v in exc.headers.items() if k == "Allow"},
        )


def authenticate(request: web.Request, *, fallback: str | None = None) -> TokenSpec | None:
    """The client making the request (401 without a valid token), or None with auth off.

    `fallback` is an `Authorization` value from elsewhere (a WebSocket subprotocol), used when
    the request has no such header.
    """
    auth = request.app.get(AUTH)
    if auth is None:
        return None
    try:
        return auth.authenticate(request.headers.get("Authorization") or fallback)
    except CueError as exc:
        raise reject(request.app[METRICS], exc) from None


def cue_authorizer(
    request: web.Request, client: TokenSpec | None
) -> Callable[[Sequence[Cue]], None] | None:
    """The check each accepted batch must pass for this client, if auth is on."""
    auth = request.app.get(AUTH)
    if auth is None or client is None:
        return None
    return lambda cues: auth.authorize(client, cues)


@routes.post("/v1/cues")
async def post_cues(request: web.Request) -> web.Response:
    """Accept one cue or a batch of up to 100, all or none."""
    client = authenticate(request)
    metrics = request.app[METRICS]
    limit = request.app[GATEWAY].settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise reject(metrics, _body_too_large(request.content_length, limit))
    try:
        # A client that sends its body byte by byte must not hold a handler for ever.
        async with asyncio.timeout(request.app[GATEWAY].settings.body_timeout):
            body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise reject(metrics, _body_too_large(None, limit)) from None
    except TimeoutError:
        error = CueError("request_timeout", "the body did not arrive in time", status=408)
        raise _closing(reject(metrics, error)) from None
    except RequestPayloadError as exc:  # e.g. a body its Content-Encoding cannot decode
        error = CueError("invalid_json", f"the body cannot be read: {exc}", status=400)
        raise _closing(reject(metrics, error)) from None
    try:
        document = decode_json(body)
    except CueError as exc:
        raise reject(metrics, exc) from None
    answers = await accept_document(
        intake_of(request.app), metrics, document, authorize=cue_authorizer(request, client)
    )
    return json_response({"cues": [a.as_json() for a in answers]}, status=202)


def _closing(error: CueError) -> CueError:
    """Mark an error whose connection must close: the rest of its body cannot be trusted."""
    error.close_connection = True
    return error


def intake_of(app: web.Application) -> Intake:
    """Where this app keeps accepted cues: the gateway's queues, or Redis."""
    return app[INTAKE]


def _body_too_large(size: int | None, limit: int) -> CueError:
    return CueError(
        "body_too_large",
        f"the request body exceeds {limit} bytes; send fewer cues per request",
        status=413,
        limit=limit,
        **({"size": size} if size is not None else {}),
    )


def channel_json(gateway: Gateway, channel: Channel, *, detail: bool = False) -> dict[str, Any]:
    """One channel as the API shows it; `detail` lists its scheduled and repeating cues."""
    queue = channel.queue
    body: dict[str, Any] = {
        "channel": channel.arn.arn,
        "alias": gateway.aliases.get(channel.arn.arn),
        "pending": queue.waiting,
        "pending_bytes": queue.pending_bytes,
        "scheduled": len(queue) - queue.waiting,
        "repeating": len(queue.repeating),
        "live": channel.live,
        "sent_requests": channel.sent_requests,
        "delivered_cues": channel.delivered_cues,
        "last_error": channel.last_error,
    }
    if detail:
        body["scheduled_cues"] = [
            {"id": p.cue.id, "type": p.cue.type, "not_before": p.cue.not_before}
            for p in queue.scheduled
        ]
        body["repeating_cues"] = [
            {"id": p.cue.id, "key": p.cue.key, "repeat_ms": round((p.cue.repeat or 0) * 1000)}
            for p in queue.repeating
        ]
    return body


@routes.get("/v1/channels")
async def list_channels(request: web.Request) -> web.Response:
    """Channels in the order the gateway met them (configured aliases first), a page at a time."""
    authenticate(request)
    gateway = request.app[GATEWAY]
    try:
        limit = int(request.query.get("limit", DEFAULT_PAGE))
        start = int(request.query.get("cursor", 0))
    except ValueError:
        raise CueError("invalid_request", "limit and cursor must be integers", status=400) from None
    if not 1 <= limit <= MAX_PAGE or start < 0:
        raise CueError("invalid_request", f"limit must be 1-{MAX_PAGE} and cursor >= 0", status=400)
    channels = list(gateway.channels.values())
    page = channels[start : start + limit]
    following = start + limit if start + limit < len(channels) else None
    return json_response(
        {
            "channels": [channel_json(gateway, c) for c in page],
            "next_cursor": str(following) if following is not None else None,
        }
    )


@routes.get(r"/v1/channels/{channel:[\s\S]+}")
async def get_channel(request: web.Request) -> web.Response:
    """One channel, by alias or (URL-encoded) ARN."""
    authenticate(request)
    gateway = request.app[GATEWAY]
    name = request.match_info["channel"]  # aiohttp has decoded it, %2F included
    arn = gateway.settings.resolve(name)
    if arn is None:
        if name.startswith("arn:"):
            raise CueError("invalid_channel", f"{name!r} is not an IVS channel ARN", status=400)
        raise CueError(
            "unknown_channel", f"no channel is configured with alias {name!r}", status=404
        )
    channel = gateway.channels.get(arn)
    if channel is None:  # a valid ARN the gateway has not met: all zeros, and nothing created
        return json_response(channel_json(gateway, Channel.blank(arn), detail=True))
    return json_response(channel_json(gateway, channel, detail=True))


@routes.delete("/v1/cues/{id}")
async def cancel_cue(request: web.Request) -> web.Response:
    """Cancel a queued, scheduled or repeating cue: `DELETE /v1/cues/{id}?channel=...`."""
    client = authenticate(request)
    channel = request.query.get("channel")
    if not channel:
        raise CueError("invalid_request", "the channel query parameter is required", status=400)
    cue_id = request.match_info["id"]
    auth = request.app.get(AUTH)
    if auth is not None and client is not None:
        auth.authorize_channel(
            client, resolve_channel(channel, request.app[GATEWAY].settings.channels)
        )
    arn, state = request.app[GATEWAY].cancel(channel, cue_id)
    return json_response(
        {"id": cue_id, "channel": arn, "status": "cancelled", "state": state.value}
    )


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """The process is up and its event loop answers."""
    return json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Ready to accept cues; 503 while draining. While IVS fails, `degraded` with the reason:
    cues are still accepted and held, so the instance stays in rotation."""
    health = request.app[GATEWAY].health()
    reason = intake_of(request.app).unavailable()
    if reason is not None and health["status"] != "draining":
        return json_response({"status": "unavailable", "reason": reason}, status=503)
    return json_response(health, status=503 if health["status"] == "draining" else 200)


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 description of this API."""
    spec = resources.files("metadata_gateway").joinpath("openapi.json").read_bytes()
    return web.Response(body=spec, content_type="application/json")


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition."""
    body = request.app[METRICS].render()
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE
    return response
