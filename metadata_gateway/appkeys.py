"""Typed keys for what the aiohttp application holds."""

from __future__ import annotations

from aiohttp import web

from metadata_gateway.gateway import Gateway
from metadata_gateway.metrics import Metrics

GATEWAY = web.AppKey("gateway", Gateway)
METRICS = web.AppKey("metrics", Metrics)
