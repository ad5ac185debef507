"""`metadata-gateway serve --local-ivs --playback` as a real process: pages, stream, clean stop."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import aiohttp
from browser.harness import require_ffmpeg

VIEWER_LINE = re.compile(rb"viewer:\s+(http://127\.0\.0\.1:\d+)/viewer\?channel=demo")


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def exited(pid: int) -> bool:
    """Whether the process is gone (or a zombie, which has exited all the same)."""
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or " Z " in stat.read_text()


async def test_serve_with_playback_serves_the_pages_and_the_stream_and_stops_ffmpeg() -> None:
    """The command prints the viewer's URL, plays the demo channel, and on SIGTERM exits 0."""
    require_ffmpeg()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MG_")}
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "metadata_gateway", "serve", "--local-ivs", "--playback"),
        *("--port", "0"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(15):
            while (match := VIEWER_LINE.search(await process.stdout.readline())) is None:
                assert process.returncode is None
        url = match.group(1).decode()
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/viewer?channel=demo") as response:
                assert response.status in (200, 503)  # 503: frontend/ not built
            async with http.get(f"{url}/demo/api/playback?channel=demo") as response:
                playback_url = (await response.json())["playbackUrl"]
            async with http.get(playback_url) as response:
                assert response.status == 200
                assert (await response.text()).startswith("#EXTM3U")
        encoders = children(process.pid)
        assert encoders, "ffmpeg should run while the demo channel is live"
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            code = await process.wait()
        assert code == 0
        assert all(exited(pid) for pid in encoders)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
