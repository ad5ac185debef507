"""`metadata-gateway local-ivs` as a real process: it logs its URL, serves, and stops cleanly."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys
from typing import Any

import pytest

from metadata_gateway.local_ivs import LocalIvsSettings
from metadata_gateway.local_ivs.cli import add_arguments, settings_from

URL_LINE = re.compile(rb"local IVS listening on (http://127\.0\.0\.1:\d+)")


async def _start(*args: str) -> tuple[asyncio.subprocess.Process, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MG_LOCAL_IVS_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "metadata_gateway",
        "local-ivs",
        *args,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert process.stderr is not None
    async with asyncio.timeout(10):
        while True:
            line = await process.stderr.readline()
            if not line:
                raise AssertionError("the local IVS exited before logging its URL")
            match = URL_LINE.search(line)
            if match:
                return process, match.group(1).decode()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_cli_serves_and_stops_cleanly_on_signal(
    make_ivs_client: Any, signum: signal.Signals
) -> None:
    """The command logs its URL, answers IVS calls, and exits 0 without a traceback on a signal."""
    process, url = await _start("--port", "0", "--channel-rate", "7")
    try:
        client = await make_ivs_client(url)
        arn = (await client.create_channel(name="cli"))["channel"]["arn"]
        assert [c["arn"] for c in (await client.list_channels())["channels"]] == [arn]
        process.send_signal(signum)
        async with asyncio.timeout(5):
            code = await process.wait()
        assert process.stderr is not None
        rest = await process.stderr.read()
        assert code == 0
        assert b"Traceback" not in rest
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_cli_refuses_invalid_options() -> None:
    """A rate below 1 is refused by argparse with exit status 2 before anything starts."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "metadata_gateway",
        "local-ivs",
        "--channel-rate",
        "0",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(10):
        _, stderr = await process.communicate()
    assert process.returncode == 2
    assert b"must be at least 1" in stderr


def test_options_fall_back_to_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each option defaults to its MG_LOCAL_IVS_<NAME> variable, then to IVS's figures."""
    monkeypatch.setenv("MG_LOCAL_IVS_PORT", "0")
    monkeypatch.setenv("MG_LOCAL_IVS_ACCOUNT_RATE", "20")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    settings = settings_from(parser.parse_args(["--region", "eu-west-1"]))
    assert settings == LocalIvsSettings(port=0, account_rate=20, region="eu-west-1")


def test_a_bad_environment_value_is_reported_like_a_bad_flag(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An out-of-range MG_LOCAL_IVS_PORT stops argument parsing with exit status 2."""
    monkeypatch.setenv("MG_LOCAL_IVS_PORT", "70000")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with pytest.raises(SystemExit) as raised:
        parser.parse_args([])
    assert raised.value.code == 2
    assert "between 0 and 65535" in capsys.readouterr().err
