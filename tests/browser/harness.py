"""A gateway with the demo pages on a local IVS, and a bounded run of a Node browser script."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from metadata_gateway.config import Settings
from metadata_gateway.ingress.auth import TokenSpec
from metadata_gateway.local_ivs import LocalIvs, LocalIvsSettings
from metadata_gateway.running.app import create_app
from metadata_gateway.sending.sender import IvsSender
from metadata_gateway.web import add_demo_routes
from metadata_gateway.web.routes import BUILD_DIR

ROOT = Path(__file__).resolve().parents[2]
BROWSER_DIR = Path(__file__).resolve().parent
FRONTEND = ROOT / "frontend"
CHROMIUM = Path(os.environ.get("MG_CHROMIUM", "/usr/bin/chromium"))
RNG_SEED = 20200714
STOP_GRACE = 3.0  # seconds a browser script gets after SIGTERM before it is killed


def require(available: bool, what: str) -> None:
    """Skip a test whose tool is missing, except in CI (CI=true), where that is a failure."""
    if available:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what}: CI installs it (.ci/run), so this test must run there")
    pytest.skip(f"{what}")


def require_ffmpeg() -> None:
    """ffmpeg and ffprobe on PATH."""
    require(
        shutil.which("ffmpeg") is not None and shutil.which("ffprobe") is not None,
        "ffmpeg/ffprobe not installed (apt-get install ffmpeg)",
    )


def require_browser() -> None:
    """Everything a browser test needs: ffmpeg, Chromium, Node, playwright-core, the build."""
    require_ffmpeg()
    require(CHROMIUM.exists(), f"{CHROMIUM} not installed (apt-get install chromium)")
    require(shutil.which("node") is not None, "node not installed")
    require(
        (FRONTEND / "node_modules" / "playwright-core").is_dir(),
        "frontend/node_modules missing (cd frontend && npm ci)",
    )
    require((BUILD_DIR / "viewer.js").is_file(), "viewer not built (cd frontend && npm run build)")


@dataclass
class DemoGateway:
    """A started gateway with the demo pages, its local IVS and its `demo` channel."""

    url: str
    app: web.Application
    ivs: LocalIvs
    arn: str
    http: aiohttp.ClientSession

    async def post(self, body: Any) -> tuple[int, Any]:
        async with self.http.post(f"{self.url}/v1/cues", json=body) as response:
            return response.status, await response.json()

    async def get(self, path: str) -> aiohttp.ClientResponse:
        async with self.http.get(f"{self.url}{path}") as response:
            await response.read()
            return response

    async def wait_for(self, predicate: Callable[[], bool], within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("condition not met in time")
            await asyncio.sleep(0.02)


@asynccontextmanager
async def demo_gateway(
    *, playback: bool, tokens: tuple[TokenSpec, ...] = (), payload_encoding: str = "json"
) -> AsyncIterator[DemoGateway]:
    """A local IVS (playback on or off) with a live `demo` channel, and a gateway in front."""
    settings = LocalIvsSettings(port=0, playback=playback)
    async with LocalIvs(settings, rng=random.Random(RNG_SEED)) as ivs:
        arn: str = ivs.state.create_channel(name="demo")["channel"]["arn"]
        ivs.state.start_stream(arn)
        gateway_settings = Settings(
            endpoint_url=ivs.url,
            channels={"demo": arn},
            tokens=tokens,
            payload_encoding=payload_encoding,
        )
        async with IvsSender(
            endpoint_url=ivs.url, timeout=gateway_settings.ivs_timeout, credentials=("t", "t")
        ) as sender:
            await sender.client(gateway_settings.region)
            app = create_app(gateway_settings, sink=sender)
            add_demo_routes(app, local_ivs_url=ivs.url)
            runner = web.AppRunner(app, handle_signals=False)
            await runner.setup()
            try:
                site = web.TCPSite(runner, "127.0.0.1", 0)
                await site.start()
                host, port = runner.addresses[0][:2]
                async with aiohttp.ClientSession() as http:
                    yield DemoGateway(f"http://{host}:{port}", app, ivs, arn, http)
            finally:
                await runner.cleanup()


def _kill_strays(marker: str) -> None:
    """SIGKILL any process whose command line names `marker` (the run's own profile dir)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in command:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)


async def run_script(script: str, settings: dict[str, Any], workdir: Path, *, within: float) -> Any:
    """Run `tests/browser/<script>` with `settings` as its config; return its JSON report."""
    profile = workdir / "chromium-profile"
    profile.mkdir()
    config = workdir / "config.json"
    config.write_bytes(orjson.dumps({**settings, "userDataDir": str(profile)}))
    process = await asyncio.create_subprocess_exec(
        "node",
        str(BROWSER_DIR / script),
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # its own process group, so it can be stopped whole
    )
    try:
        async with asyncio.timeout(within):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                async with asyncio.timeout(STOP_GRACE):
                    await process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        # Chromium runs in a process group of its own; whatever survived goes by its profile.
        _kill_strays(str(profile))
    lines = out.decode().strip().splitlines()
    if process.returncode != 0 or not lines:
        tail = f"{err.decode()[-4000:]}\n{out.decode()[-2000:]}"
        raise AssertionError(f"{script} failed ({process.returncode}):\n{tail}")
    return orjson.loads(lines[-1])
