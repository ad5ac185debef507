"""The HTTP API: cues in, channel state and health out, all through the intake seam."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from metadata_gateway.core.cues import resolve_channel
from metadata_gateway.core.errors import CueError
from metadata_gateway.core.validation import decode_json
from metadata_gateway.ingress.auth import Caller, authenticate
from metadata_gateway.ingress.documents import accept_document, reject
from metadata_gateway.intake.seam import Intake
from metadata_gateway.running.appkeys import AUTH, INTAKE, METRICS, RULES, SETTINGS
from metadata_gateway.telling.metrics import CONTENT_TYPE

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


def caller_of(request: web.Request) -> Caller:
    """The client making the request (401 without a valid token), or anyone with auth off."""
    try:
        return authenticate(request.app.get(AUTH), request.headers.get("Authorization"))
    except CueError as exc:
        raise reject(request.app[METRICS], exc) from None


@routes.post("/v1/cues")
async def post_cues(request: web.Request) -> web.Response:
    """Accept one cue or a batch of up to 100, all or none."""
    app = request.app
    caller = caller_of(request)
    metrics, settings = app[METRICS], app[SETTINGS]
    limit = settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise reject(metrics, _body_too_large(request.content_length, limit))
    try:
        # A client that sends its body byte by byte must not hold a handler for ever.
        async with asyncio.timeout(settings.body_timeout):
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
        document, intake=app[INTAKE], rules=app[RULES], caller=caller, metrics=metrics
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


@routes.get("/v1/channels")
async def list_channels(request: web.Request) -> web.Response:
    """Channels in the order the gateway met them (configured aliases first), a page at a time."""
    caller_of(request)
    try:
        limit = int(request.query.get("limit", DEFAULT_PAGE))
        start = int(request.query.get("cursor", 0))
    except ValueError:
        raise CueError("invalid_request", "limit and cursor must be integers", status=400) from None
    if not 1 <= limit <= MAX_PAGE or start < 0:
        raise CueError("invalid_request", f"limit must be 1-{MAX_PAGE} and cursor >= 0", status=400)
    page, following = await intake_of(request.app).channels(start, limit)
    return json_response(
        {
            "channels": [view.as_json() for view in page],
            "next_cursor": str(following) if following is not None else None,
        }
    )


@routes.get(r"/v1/channels/{channel:[\s\S]+}")
async def get_channel(request: web.Request) -> web.Response:
    """One channel, by alias or (URL-encoded) ARN."""
    caller_of(request)
    name = request.match_info["channel"]  # aiohttp has decoded it, %2F included
    arn = request.app[SETTINGS].resolve(name)
    if arn is None:
        if name.startswith("arn:"):
            raise CueError("invalid_channel", f"{name!r} is not an IVS channel ARN", status=400)
        raise CueError(
            "unknown_channel", f"no channel is configured with alias {name!r}", status=404
        )
    view = await intake_of(request.app).channel(arn)
    return json_response(view.as_json(detail=True))


@routes.delete("/v1/cues/{id}")
async def cancel_cue(request: web.Request) -> web.Response:
    """Cancel a queued, scheduled or repeating cue: `DELETE /v1/cues/{id}?channel=...`."""
    caller = caller_of(request)
    channel = request.query.get("channel")
    if not channel:
        raise CueError("invalid_request", "the channel query parameter is required", status=400)
    arn = resolve_channel(channel, request.app[RULES].aliases)
    caller.authorize_channel(arn)
    cancelled = await intake_of(request.app).cancel(arn, request.match_info["id"])
    return json_response(cancelled.as_json())


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """The process is up and its event loop answers."""
    return json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Ready to accept cues; 503 while draining. While IVS fails, `degraded` with the reason:
    cues are still accepted and held, so the instance stays in rotation."""
    intake = intake_of(request.app)
    health = intake.health()
    reason = intake.unavailable()
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
