"""The aiohttp application: routes, and the lifetime of the gateway and its IVS client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from metadata_gateway.accounts import account_sessions
from metadata_gateway.appkeys import AUTH, GATEWAY, INTAKE, METRICS, RECEIPTS, WS_HUB
from metadata_gateway.auth import Authenticator
from metadata_gateway.config import Settings
from metadata_gateway.events_queue import StreamEventsConsumer
from metadata_gateway.gateway import Gateway
from metadata_gateway.http_api import errors_middleware, routes
from metadata_gateway.intake import LocalIntake
from metadata_gateway.ivs import MetadataSink
from metadata_gateway.metrics import Metrics
from metadata_gateway.receipts import ReceiptRouter
from metadata_gateway.sender import IvsSender, ivs_regions
from metadata_gateway.ws_api import websocket_handler
from metadata_gateway.ws_session import WsHub

if TYPE_CHECKING:
    from metadata_gateway.distributed import DistributedRuntime


def create_app(
    settings: Settings,
    *,
    sink: MetadataSink | None = None,
    clock: Callable[[], float] | None = None,
) -> web.Application:
    """Build the application; without `sink` it opens its own IVS client at startup."""
    # The body limit is checked by the handler, which answers with our JSON error.
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[errors_middleware])
    app.add_routes(routes)
    app.router.add_get("/v1/ws", websocket_handler)

    async def gateway_context(app: web.Application) -> AsyncIterator[None]:
        sender: IvsSender | None = None
        target: MetadataSink
        if sink is None:
            target = sender = IvsSender(
                endpoint_url=settings.endpoint_url,
                timeout=settings.ivs_timeout,
                accounts=account_sessions(settings.accounts, region=settings.region),
            )
            await sender.client(settings.region)  # load the service model now, not on a cue
        else:
            target = sink
        runtime: DistributedRuntime | None = None
        regions = frozenset(settings.regions) or ivs_regions() | {settings.region}
        if settings.redis_url is None:
            gateway = Gateway(settings, sink=target, clock=clock, regions=regions)
        else:
            # Imported here: redis is needed only in distributed mode.
            from metadata_gateway.distributed import DistributedRuntime

            runtime = DistributedRuntime(settings)
            gateway = Gateway(
                runtime.local_settings(),
                sink=target,
                clock=clock,
                gate=runtime.gate,
                new_id=runtime.new_id,
                regions=regions,
            )
        metrics = Metrics(gateway)
        receipts = ReceiptRouter()
        hub = WsHub()
        gateway.listeners += [metrics, receipts]
        app[GATEWAY] = gateway
        app[METRICS] = metrics
        app[RECEIPTS] = receipts
        app[WS_HUB] = hub
        if settings.tokens:
            app[AUTH] = Authenticator(settings.tokens, settings.channels, clock=gateway.now)
        gateway.start()
        events: StreamEventsConsumer | None = None
        if settings.events_queue_url is not None:
            events = StreamEventsConsumer(
                gateway.streams,
                queue_url=settings.events_queue_url,
                region=settings.region,
                endpoint_url=settings.sqs_endpoint_url,
                now=gateway.now,
                registry=metrics.registry,
            )
            await events.start()
        if runtime is not None:
            await runtime.start(gateway, receipts)
            runtime.report_to(metrics)
            assert runtime.intake is not None
            app[INTAKE] = runtime.intake
        else:
            app[INTAKE] = LocalIntake(gateway)
        try:
            yield
        finally:
            if events is not None:
                await events.close()
            await hub.close_all()
            if runtime is not None:
                await runtime.close()  # queued cues stay in Redis for the next owner
            await gateway.close()
            if sender is not None:
                await sender.close()

    app.cleanup_ctx.append(gateway_context)

    async def close_sessions(app: web.Application) -> None:
        # aiohttp waits for open handlers after on_shutdown, and a WebSocket handler never ends
        # by itself. Single-process: drop what is left first, so its submitters hear why.
        if settings.redis_url is None:
            await app[GATEWAY].close()
        await app[WS_HUB].close_all()

    app.on_shutdown.append(close_sessions)

    return app
