"""The demo pages for a gateway on a local IVS: a viewer on the real IVS player, and a console.

`add_demo_routes(app, local_ivs_url=...)` mounts them; docs/viewer.md shows the whole loop.
"""

from metadata_gateway.web.routes import add_demo_routes

__all__ = ["add_demo_routes"]
