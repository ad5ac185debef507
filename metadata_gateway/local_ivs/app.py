"""The local IVS as one aiohttp application: the IVS wire API plus the `/_local/` admin API."""

from __future__ import annotations

from aiohttp import web

from metadata_gateway.local_ivs import admin, api
from metadata_gateway.local_ivs.keys import STATE_KEY
from metadata_gateway.local_ivs.playback import routes as playback
from metadata_gateway.local_ivs.state import LocalIvsState


def create_local_ivs_app(state: LocalIvsState) -> web.Application:
    """Return an application serving `state`; mount it at the root (botocore posts to `/<Op>`)."""
    app = web.Application()
    app[STATE_KEY] = state
    # Admin routes first: the IVS catch-all would otherwise answer `/_local/...` itself.
    admin.add_routes(app)
    if state.settings.playback:
        playback.add_routes(app)
    api.add_routes(app)
    return app
