"""Typed aiohttp application keys shared by the IVS API and the admin routes."""

from __future__ import annotations

from aiohttp import web

from metadata_gateway.local_ivs.state import LocalIvsState

STATE_KEY = web.AppKey("local_ivs_state", LocalIvsState)


def state_of(request: web.Request) -> LocalIvsState:
    """Return the LocalIvsState the request's application serves."""
    return request.app[STATE_KEY]
