"""moto's server mode (SQS and STS) as a child process on 127.0.0.1, for the events and accounts
tests; and small helpers for its queues."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
# moto accepts any credentials; these are what the tests' clients and child processes sign with.
MOTO_ENV = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-west-2",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def moto_server_command() -> str | None:
    """The venv's `moto_server`, or None when moto[server] is not installed."""
    beside = Path(sys.executable).with_name("moto_server")
    return str(beside) if beside.exists() else shutil.which("moto_server")


needs_moto = pytest.mark.skipif(
    moto_server_command() is None, reason="moto[server] is not installed (make .venv/.installed)"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def moto_server(log: Path) -> Iterator[str]:
    """A `moto_server` on a free loopback port until the block ends; its URL."""
    command = moto_server_command()
    assert command is not None
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [command, "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **MOTO_ENV},
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert process.poll() is None, log.read_text()[-2000:]
            with (
                contextlib.suppress(urllib.error.URLError, ConnectionError),
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1),
            ):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"moto_server did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def aws_kwargs(url: str) -> dict[str, Any]:
    """Client arguments for moto at `url`."""
    return {
        "region_name": MOTO_ENV["AWS_DEFAULT_REGION"],
        "endpoint_url": url,
        "aws_access_key_id": MOTO_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": MOTO_ENV["AWS_SECRET_ACCESS_KEY"],
    }
