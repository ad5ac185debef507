"""LocalIvs: the local IVS application bound to a loopback port for one `async with`."""

from __future__ import annotations

import logging
import random
import time
from types import TracebackType

from aiohttp import web

from metadata_gateway.local_ivs.app import create_local_ivs_app
from metadata_gateway.local_ivs.eventbridge import EventPublisher
from metadata_gateway.local_ivs.playback import Playback
from metadata_gateway.local_ivs.playback.routes import PLAYBACK_KEY
from metadata_gateway.local_ivs.settings import LocalIvsSettings, base_url
from metadata_gateway.local_ivs.state import Clock, LocalIvsState

logger = logging.getLogger(__name__)

# Requests still running at close get this long before aiohttp cancels them; viewers are closed
# first, so only an injected latency can last this long.
SHUTDOWN_TIMEOUT = 2.0


class LocalIvs:
    """Serves a LocalIvsState over HTTP; `url` is valid between start and close."""

    def __init__(
        self,
        settings: LocalIvsSettings | None = None,
        *,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings or LocalIvsSettings()
        self.state = LocalIvsState(self.settings, clock=clock, wall_clock=wall_clock, rng=rng)
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self._publisher: EventPublisher | None = None

    def __repr__(self) -> str:
        where = self._url or "not started"
        return f"<LocalIvs {where} {self.state!r}>"

    @property
    def url(self) -> str:
        """The base URL it answers on, e.g. `http://127.0.0.1:4599` (the bound port for port 0)."""
        if self._url is None:
            raise RuntimeError("LocalIvs is not started")
        return self._url

    @property
    def playback(self) -> Playback | None:
        """The HLS playback server while started with `playback=True`; None otherwise."""
        return self._runner.app.get(PLAYBACK_KEY) if self._runner is not None else None

    async def start(self) -> None:
        """Bind the port and start answering."""
        if self._runner is not None:
            raise RuntimeError("LocalIvs is already started")
        # No access log: at 155 calls/s it would drown everything else.
        runner = web.AppRunner(
            create_local_ivs_app(self.state), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.settings.host, self.settings.port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        port = runner.addresses[0][1]
        if self.settings.events_queue_url:
            self._publisher = EventPublisher(
                queue_url=self.settings.events_queue_url,
                region=self.settings.region,
                endpoint_url=self.settings.sqs_endpoint_url,
            )
            try:
                await self._publisher.start()
            except BaseException:
                await runner.cleanup()
                raise
            self.state.sessions.follow(self._publisher.publish)
        self._runner = runner
        self._url = base_url(self.settings.host, port)
        self.state.base_url = self._url

    async def close(self) -> None:
        """Stop accepting, end viewer streams, finish in-flight calls and release the port."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            await publisher.close()
        self._url = None

    async def __aenter__(self) -> LocalIvs:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
