"""The aiohttp application: routes, and one lifetime for the gateway, its IVS client and its
tasks, ended by the one shutdown sequence (`shutdown.py`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from metadata_gateway.config import Settings
from metadata_gateway.core.cues import id_factory
from metadata_gateway.core.gateway import Gateway
from metadata_gateway.core.ivs import MetadataSink
from metadata_gateway.core.validation import CueRules
from metadata_gateway.ingress.auth import Authenticator
from metadata_gateway.ingress.http_api import errors_middleware, routes
from metadata_gateway.ingress.ws_api import websocket_handler
from metadata_gateway.ingress.ws_session import WsHub
from metadata_gateway.intake.local import LocalIntake
from metadata_gateway.intake.seam import Intake
from metadata_gateway.running.appkeys import (
    AUTH,
    ENGINE,
    GATEWAY,
    INTAKE,
    METRICS,
    RECEIPTS,
    RULES,
    SETTINGS,
    SHUTDOWN,
    TASKS,
    WS_HUB,
)
from metadata_gateway.running.shutdown import Phase, Shutdown
from metadata_gateway.running.tasks import TaskRegistry
from metadata_gateway.sending.accounts import account_sessions
from metadata_gateway.sending.engine import Engine
from metadata_gateway.sending.events_queue import StreamEventsConsumer
from metadata_gateway.sending.sender import IvsSender, ivs_regions
from metadata_gateway.telling.metrics import Metrics
from metadata_gateway.telling.receipts import ReceiptRouter

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
    app[SETTINGS] = settings

    async def gateway_context(app: web.Application) -> AsyncIterator[None]:
        now = clock or asyncio.get_running_loop().time  # the one clock of this process
        tasks = TaskRegistry()
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
            gateway = Gateway(settings, clock=now)
            engine = Engine(gateway, sink=target, tasks=tasks, clock=now)
            new_id = id_factory()
        else:
            # Imported here: redis is needed only in distributed mode.
            from metadata_gateway.distributed import DistributedRuntime

            runtime = DistributedRuntime(settings)
            gateway = Gateway(runtime.local_settings(), clock=now)
            engine = Engine(gateway, sink=target, tasks=tasks, clock=now, gate=runtime.gate)
            new_id = runtime.new_id
        metrics = Metrics(gateway)
        receipts = ReceiptRouter()
        hub = WsHub()
        gateway.listeners += [metrics, receipts]
        app[RULES] = CueRules(
            aliases=settings.channels,
            max_cue_bytes=settings.max_cue_bytes,
            regions=regions,
            new_id=new_id,
        )
        app[GATEWAY] = gateway
        app[ENGINE] = engine
        app[TASKS] = tasks
        app[METRICS] = metrics
        app[RECEIPTS] = receipts
        app[WS_HUB] = hub
        if settings.tokens:
            app[AUTH] = Authenticator(settings.tokens, settings.channels, clock=now)
        engine.start()
        events: StreamEventsConsumer | None = None
        if settings.events_queue_url is not None:
            events = StreamEventsConsumer(
                gateway.streams,
                tasks=tasks,
                queue_url=settings.events_queue_url,
                region=settings.region,
                endpoint_url=settings.sqs_endpoint_url,
                now=now,
                registry=metrics.registry,
            )
            await events.start()
        app[SHUTDOWN] = shutdown = Shutdown(
            engine=engine,
            hub=hub,
            tasks=tasks,
            events=events,
            distributed=runtime,
            ivs_client=sender,
        )
        intake: Intake
        if runtime is not None:
            await runtime.start(gateway, receipts, tasks=tasks, clock=now)
            runtime.report_to(metrics)
            assert runtime.intake is not None
            intake = runtime.intake
        else:
            intake = LocalIntake(gateway)
        app[INTAKE] = intake
        try:
            yield
        finally:
            await shutdown.run()  # the phases not run yet: Redis, the IVS client, leftovers

    app.cleanup_ctx.append(gateway_context)

    async def close_sessions(app: web.Application) -> None:
        # aiohttp waits for open handlers after on_shutdown, and a WebSocket handler never ends
        # by itself: stop sending (its submitters hear what was dropped), then close sessions.
        # Redis and the IVS client close after the handlers, in the cleanup context.
        if SHUTDOWN in app:
            await app[SHUTDOWN].run(through=Phase.CLOSE_SESSIONS)

    app.on_shutdown.append(close_sessions)

    return app
