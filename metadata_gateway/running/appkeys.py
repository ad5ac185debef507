"""Typed keys for what the aiohttp application holds. The types are for the type checker only:
a handler that looks up a key need not load the module that made the value."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from metadata_gateway.config import Settings
    from metadata_gateway.core.gateway import Gateway
    from metadata_gateway.core.validation import CueRules
    from metadata_gateway.ingress.auth import Authenticator
    from metadata_gateway.ingress.ws_session import WsHub
    from metadata_gateway.intake.seam import Intake
    from metadata_gateway.running.shutdown import Shutdown
    from metadata_gateway.running.tasks import TaskRegistry
    from metadata_gateway.sending.engine import Engine
    from metadata_gateway.telling.metrics import Metrics
    from metadata_gateway.telling.receipts import ReceiptRouter

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
RULES: web.AppKey[CueRules] = web.AppKey("rules")  # what every cue is checked against
GATEWAY: web.AppKey[Gateway] = web.AppKey("gateway")  # channels and queues (views, tests)
ENGINE: web.AppKey[Engine] = web.AppKey("engine")
TASKS: web.AppKey[TaskRegistry] = web.AppKey("tasks")
SHUTDOWN: web.AppKey[Shutdown] = web.AppKey("shutdown")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
RECEIPTS: web.AppKey[ReceiptRouter] = web.AppKey("receipts")
WS_HUB: web.AppKey[WsHub] = web.AppKey("ws_hub")
AUTH: web.AppKey[Authenticator] = web.AppKey("auth")  # absent when running without tokens
INTAKE: web.AppKey[Intake] = web.AppKey("intake")  # the gateway's own queues, or Redis
