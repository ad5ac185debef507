"""A gateway on a real socket, pointed at a local IVS, for the end-to-end tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDictProxy

from metadata_gateway.config import Settings
from metadata_gateway.core.gateway import Gateway
from metadata_gateway.local_ivs import LocalIvs
from metadata_gateway.local_ivs.events import max_in_window
from metadata_gateway.running.app import create_app
from metadata_gateway.running.appkeys import ENGINE, GATEWAY, METRICS
from metadata_gateway.sending.engine import Engine
from metadata_gateway.sending.sender import IvsSender


@dataclass
class RunningGateway:
    """A started gateway: its URL, its app, an HTTP session to it, and the local IVS behind it."""

    url: str
    app: web.Application
    http: aiohttp.ClientSession
    ivs: LocalIvs
    runner: web.AppRunner

    @property
    def gateway(self) -> Gateway:
        return self.app[GATEWAY]

    @property
    def engine(self) -> Engine:
        return self.app[ENGINE]

    async def post(self, body: Any) -> tuple[int, Any, CIMultiDictProxy[str]]:
        async with self.http.post(f"{self.url}/v1/cues", json=body) as response:
            return response.status, await response.json(), response.headers

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.http.get(f"{self.url}{path}") as response:
            return response.status, await response.json(content_type=None)

    def app_metrics_text(self) -> str:
        """The metrics as the app renders them, without a request."""
        return self.app[METRICS].render().decode()

    async def metrics(self) -> str:
        async with self.http.get(f"{self.url}/metrics") as response:
            return await response.text()

    async def wait_for(
        self, predicate: Callable[[], bool], within: float = 10.0, every: float = 0.02
    ) -> None:
        deadline = time.monotonic() + within
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("condition not met in time")
            await asyncio.sleep(every)


def new_channel(ivs: LocalIvs, name: str, *, live: bool = True) -> str:
    """Create a channel at the local IVS (and start its stream); return its ARN."""
    arn: str = ivs.state.create_channel(name=name)["channel"]["arn"]
    if live:
        ivs.state.start_stream(arn)
    return arn


@asynccontextmanager
async def running_gateway(ivs: LocalIvs, **overrides: Any) -> AsyncIterator[RunningGateway]:
    """Start a gateway on 127.0.0.1 (any free port) sending to `ivs`."""
    # No startup hold: each test's local IVS is new, so no earlier calls fill its window.
    defaults = {"offline_probe_interval": 0.3, "startup_hold": 0.0}
    settings = Settings(endpoint_url=ivs.url, **{**defaults, **overrides})

    async with IvsSender(
        endpoint_url=ivs.url, timeout=settings.ivs_timeout, credentials=("test", "test")
    ) as sender:
        await sender.client(settings.region)
        app = create_app(settings, sink=sender)
        runner = web.AppRunner(
            app, handle_signals=False, keepalive_timeout=settings.keepalive_timeout
        )

        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        try:
            async with aiohttp.ClientSession() as http:
                yield RunningGateway(f"http://{host}:{port}", app, http, ivs, runner)

        finally:
            await runner.cleanup()


# The same window IVS enforces, over what the local IVS recorded.
max_calls_in_window = max_in_window
