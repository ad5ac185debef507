"""Typed keys for what the aiohttp application holds."""

from __future__ import annotations

from aiohttp import web

from metadata_gateway.auth import Authenticator
from metadata_gateway.config import Settings
from metadata_gateway.engine import Engine
from metadata_gateway.gateway import Gateway
from metadata_gateway.intake import Intake
from metadata_gateway.metrics import Metrics
from metadata_gateway.receipts import ReceiptRouter
from metadata_gateway.shutdown import Shutdown
from metadata_gateway.tasks import TaskRegistry
from metadata_gateway.validation import CueRules
from metadata_gateway.ws_session import WsHub

SETTINGS = web.AppKey("settings", Settings)
RULES = web.AppKey("rules", CueRules)  # what every cue is checked against
GATEWAY = web.AppKey("gateway", Gateway)  # the channels and their queues (for views and tests)
ENGINE = web.AppKey("engine", Engine)
TASKS = web.AppKey("tasks", TaskRegistry)
SHUTDOWN = web.AppKey("shutdown", Shutdown)
METRICS = web.AppKey("metrics", Metrics)
RECEIPTS = web.AppKey("receipts", ReceiptRouter)
WS_HUB = web.AppKey("ws_hub", WsHub)
AUTH = web.AppKey("auth", Authenticator)  # absent when the gateway runs without tokens
INTAKE: web.AppKey[Intake] = web.AppKey("intake")  # the gateway's own queues, or Redis
