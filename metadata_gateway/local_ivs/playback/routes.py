"""The local IVS's playback URLs: `/_local/playback/<channel id>.m3u8` and its segments."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from metadata_gateway.local_ivs.keys import STATE_KEY
from metadata_gateway.local_ivs.playback.manager import Playback

PLAYBACK_KEY = web.AppKey("local_ivs_playback", Playback)
# A playlist asked for right after the stream started waits this long for its first segment
# (about a second of encoding) instead of failing the player's first load.
FIRST_SEGMENT_WAIT = 5.0
# Players on another origin (the gateway's demo viewer) fetch these, as they do from IVS.
_HEADERS = {"Access-Control-Allow-Origin": "*"}


def _not_found(message: str) -> web.Response:
    return web.json_response(
        {"error": "ResourceNotFoundException", "message": message}, status=404, headers=_HEADERS
    )


async def playlist(request: web.Request) -> web.Response:
    """`GET /_local/playback/<channel id>.m3u8`: the channel's live media playlist."""
    playback = request.app[PLAYBACK_KEY]
    channel_id = request.match_info["channel_id"]
    text = playback.playlist(channel_id)
    if text is None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FIRST_SEGMENT_WAIT):
                if await playback.wait_playable(channel_id):
                    text = playback.playlist(channel_id)
    if text is None:
        return _not_found(f"Channel {channel_id} is not broadcasting")
    return web.Response(
        text=text,
        content_type="application/vnd.apple.mpegurl",
        headers={**_HEADERS, "Cache-Control": "no-cache"},
    )


async def segment(request: web.Request) -> web.Response:
    """`GET /_local/playback/<channel id>/<n>.ts`: one retained segment."""
    channel_id = request.match_info["channel_id"]
    data = request.app[PLAYBACK_KEY].segment(channel_id, int(request.match_info["sequence"]))
    if data is None:
        return _not_found(f"Segment {request.match_info['sequence']} of {channel_id} is gone")
    return web.Response(
        body=data,
        content_type="video/mp2t",
        headers={**_HEADERS, "Cache-Control": "max-age=60"},
    )


def add_routes(app: web.Application) -> None:
    """Serve playback for the app's state; ffmpeg starts with the first live channel."""

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        playback = Playback(app[STATE_KEY])
        await playback.start()
        app[PLAYBACK_KEY] = playback
        try:
            yield
        finally:
            await playback.close()

    app.cleanup_ctx.append(lifetime)
    app.router.add_get("/_local/playback/{channel_id}.m3u8", playlist)
    app.router.add_get(r"/_local/playback/{channel_id}/{sequence:\d{1,18}}.ts", segment)
