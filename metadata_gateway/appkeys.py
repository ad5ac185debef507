"""Typed keys for what the aiohttp application holds."""

from __future__ import annotations

from aiohttp import web

from metadata_gateway.auth import Authenticator
from metadata_gateway.gateway import Gateway
from metadata_gateway.intake import Intake
from metadata_gateway.metrics import Metrics
from metadata_gateway.receipts import ReceiptRouter
from metadata_gateway.ws_session import WsHub

GATEWAY = web.AppKey("gateway", Gateway)
METRICS = web.AppKey("metrics", Metrics)
RECEIPTS = web.AppKey("receipts", ReceiptRouter)
WS_HUB = web.AppKey("ws_hub", WsHub)
AUTH = web.AppKey("auth", Authenticator)  # absent when the gateway runs without tokens
INTAKE: web.AppKey[Intake] = web.AppKey("intake")  # the gateway's own queues, or Redis
