"""The `serve` command as a process: start on the local IVS, post, drain on SIGTERM, exit 0."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
import orjson


async def read_json_line(stream: asyncio.StreamReader, message: str) -> dict[str, object]:
    while True:
        line = await asyncio.wait_for(stream.readline(), 20)
        assert line, f"process ended before logging {message!r}"
        try:
            record: dict[str, object] = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if record.get("message") == message:
            return record


async def test_serve_local_ivs_accepts_cues_and_drains_on_sigterm(tmp_path: Path) -> None:
    """serve --local-ivs logs its URL, takes a cue for `demo`, and exits 0 after draining."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "metadata_gateway",
        "serve",
        "--local-ivs",
        "--port",
        "0",
        "--drain-timeout",
        "3",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""},
    )
    try:
        assert process.stderr is not None
        listening = await read_json_line(process.stderr, "gateway listening")
        url = str(listening["url"])
        async with aiohttp.ClientSession() as http:
            cue = {"channel": "demo", "type": "quiz", "data": {"question_id": "q1"}}
            async with http.post(f"{url}/v1/cues", json=cue) as response:
                assert response.status == 202
        process.send_signal(signal.SIGTERM)
        drained = await read_json_line(process.stderr, "drained")
        assert drained["left"] == 0
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_bad_settings_stop_the_process_with_a_clear_message() -> None:
    """An impossible setting exits 2 naming the setting."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "metadata_gateway",
        "serve",
        "--channel-rate",
        "9",
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 2
    assert b"channel_rate must be 1-5" in err
