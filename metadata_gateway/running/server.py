"""Running the gateway as a process: start, serve, drain on SIGTERM, stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import signal

from aiohttp import web

from metadata_gateway.config import Settings
from metadata_gateway.running.app import create_app
from metadata_gateway.running.appkeys import SHUTDOWN
from metadata_gateway.running.shutdown import Phase
from metadata_gateway.sending.accounts import account_sessions
from metadata_gateway.sending.sender import IvsSender

log = logging.getLogger(__name__)

LOCAL_CREDENTIALS = ("local", "local")  # the local IVS accepts any; never real ones
DEMO_ALIAS = "demo"


async def serve(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Serve until SIGINT/SIGTERM (or `stop`), then drain and close everything in order."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        sender = None
        if settings.local_ivs:
            settings, sender = await _start_local_ivs(settings, stack)
        app = create_app(settings, sink=sender)
        if settings.local_ivs:
            from metadata_gateway.web import add_demo_routes

            assert settings.endpoint_url is not None  # the local IVS's URL, set above
            add_demo_routes(app, local_ivs_url=settings.endpoint_url)
        runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            keepalive_timeout=settings.keepalive_timeout,
        )

        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        url = _site_url(runner, settings.host)
        log.info("gateway listening", extra={"url": url, "region": settings.region})
        if not settings.tokens:
            log.warning(
                "AUTHENTICATION IS OFF: anyone who can reach this port can put text into the "
                "live streams; configure [[tokens]] for production",
                extra={"local_ivs": settings.local_ivs},
            )
        if settings.local_ivs:
            _log_demo(url, ivs_url=settings.endpoint_url or "", playback=settings.playback)
        await stop.wait()
        # Phases 1-2 here (stop accepting, drain); runner.cleanup runs the rest, in order.
        await app[SHUTDOWN].run(through=Phase.DRAIN, drain_s=settings.drain_timeout)
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.remove_signal_handler(signum)


async def _start_local_ivs(
    settings: Settings, stack: contextlib.AsyncExitStack
) -> tuple[Settings, IvsSender]:
    # Imported here: only --local-ivs needs the local IVS loaded.
    from metadata_gateway.local_ivs import LocalIvs, LocalIvsSettings

    ivs = await stack.enter_async_context(
        LocalIvs(
            LocalIvsSettings(
                host="127.0.0.1",
                port=settings.local_ivs_port,
                region=settings.region,
                channel_rate=settings.channel_rate,
                account_rate=settings.account_rate,
                playback=settings.playback,
            )
        )
    )
    created = ivs.state.create_channel(name=DEMO_ALIAS)
    arn = created["channel"]["arn"]
    ivs.state.start_stream(arn)
    log.info("local IVS listening", extra={"url": ivs.url, "demo_channel": arn})
    sender = await stack.enter_async_context(
        IvsSender(
            endpoint_url=ivs.url,
            timeout=settings.ivs_timeout,
            credentials=LOCAL_CREDENTIALS,
            accounts=account_sessions(settings.accounts, region=settings.region),
        )
    )
    await sender.client(settings.region)  # load the service model now, not on the first cue
    channels = {**settings.channels, DEMO_ALIAS: arn}
    return settings.with_changes(endpoint_url=ivs.url, channels=channels), sender


def _site_url(runner: web.AppRunner, host: str) -> str:
    for address in runner.addresses:
        if isinstance(address, tuple):
            return f"http://{address[0]}:{address[1]}"
    return f"http://{host}"


def _log_demo(url: str, *, ivs_url: str, playback: bool) -> None:
    cue = '{"channel":"demo","type":"quiz","data":{"question_id":"q1","text":"2+2?"}}'
    curl = (
        f"curl -s -X POST {url}/v1/cues -H 'Content-Type: application/json' -d {shlex.quote(cue)}"
    )
    received = f"{ivs_url}/_local/metadata"
    log.info("try it", extra={"curl": curl, "received_by_viewers": received})
    viewer = f"{url}/viewer?channel=demo" if playback else None
    console = f"{url}/console?channel=demo"
    log.info("demo pages", extra={"viewer": viewer, "console": console})
    pages = (f"    viewer:  {viewer}\n" if viewer else "") + f"    console: {console}\n"
    pages += f"    what viewers received: {received}\n"

    print(f"\n  Post a cue:\n    {curl}\n\n  Watch and send:\n{pages}", flush=True)


def run(settings: Settings) -> int:
    """Run the gateway process to completion; returns its exit code."""
    from metadata_gateway.local_ivs.playback import PlaybackUnavailable

    try:
        asyncio.run(serve(settings))
    except PlaybackUnavailable as exc:
        log.error("cannot start playback: %s", exc)
        return 2
    return 0
