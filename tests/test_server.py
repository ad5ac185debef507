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


async def test_no_secret_ever_reaches_the_logs(tmp_path: Path) -> None:
    """Tokens (good and bad) and AWS secrets used in a run appear in no log line."""
    from metadata_gateway.ingress.auth import hash_token

    token, wrong, aws_secret = "mgw_RightToken123", "mgw_WrongToken456", "AwsSecret/789+xyz"
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(f'[[tokens]]\nname = "quiz"\nsha256 = "{hash_token(token)}"\n')
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "metadata_gateway", "serve", "--local-ivs", "--port", "0"),
        *("--tokens-file", str(tokens), "--log-level", "debug", "--drain-timeout", "1"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": aws_secret},
    )
    try:
        assert process.stderr is not None
        url = str((await read_json_line(process.stderr, "gateway listening"))["url"])
        async with aiohttp.ClientSession() as http:
            cue = {"channel": "demo", "type": "quiz", "data": {"question_id": "q1"}}
            for bearer, expected in ((token, 202), (wrong, 401)):
                headers = {"Authorization": f"Bearer {bearer}"}
                async with http.post(f"{url}/v1/cues", json=cue, headers=headers) as response:
                    assert response.status == expected
        process.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(process.communicate(), 15)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    logs = out + err
    assert b"drained" in logs
    for secret in (token, wrong, aws_secret):
        assert secret.encode() not in logs
