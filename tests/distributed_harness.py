"""Processes for the distributed-mode tests: a throwaway redis-server and gateway replicas."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from metadata_gateway.local_ivs import MetadataEvent
from metadata_gateway.local_ivs.events import max_in_window as max_in_window

START_TIMEOUT_S = 15.0
REDIS_TEST_FLAGS = ("--save", "", "--appendonly", "no")  # tests only; production wants AOF


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisProcess:
    """A redis-server on a fixed random loopback port with a temp dir, no persistence."""

    def __init__(self, directory: str) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.port = free_port()
        self._argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", directory]
        self._argv += REDIS_TEST_FLAGS
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        proc = self._proc = subprocess.Popen(
            self._argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def redis_process() -> Iterator[RedisProcess]:
    """A started `RedisProcess`, stopped (and its directory removed) afterwards."""
    with tempfile.TemporaryDirectory(prefix="mg-redis-") as tmp:
        server = RedisProcess(tmp)
        try:
            server.start()
            yield server
        finally:
            server.stop()


@contextlib.contextmanager
def redis_sentinel(primary_port: int, service: str) -> Iterator[int]:
    """A Redis Sentinel (redis-server --sentinel) watching the primary on `primary_port`; its
    port."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="mg-sentinel-") as tmp:
        conf = Path(tmp) / "sentinel.conf"
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {tmp}\n"
            f"sentinel monitor {service} 127.0.0.1 {primary_port} 1\n"
        )
        proc = subprocess.Popen(
            [binary, str(conf), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    break
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("redis sentinel did not start")
                time.sleep(0.02)
            yield port
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A redis-server on a random loopback port with a temp dir, no persistence; its URL."""
    with redis_process() as server:
        yield server.url


@dataclass
class Replica:
    """One gateway process: `serve` on a fixed port, restartable."""

    port: int
    args: Sequence[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "metadata_gateway",
                    "serve",
                    "--port",
                    str(self.port),
                    *self.args,
                ],
                env=env,
                stdout=out,
                stderr=out,
            )

    def kill(self) -> None:
        """SIGKILL: no drain, no goodbye."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    async def ready(self, http: aiohttp.ClientSession, within: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + within
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{self.url}/readyz") as response:
                    if response.status == 200:
                        return
            if time.monotonic() > deadline:
                raise AssertionError(f"replica {self.url} not ready; see {self.log}")
            assert self.proc is not None
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def replicas(
    count: int, args: Sequence[str], log_dir: Path, http: aiohttp.ClientSession
) -> AsyncIterator[list[Replica]]:
    """`count` started and ready replicas; all stopped afterwards."""
    group = [Replica(free_port(), args, log_dir / f"replica{i}.log") for i in range(count)]
    try:
        for replica in group:
            replica.start()
        await asyncio.gather(*(r.ready(http) for r in group))
        yield group
    finally:
        for replica in group:
            replica.stop()


@dataclass
class LoadResult:
    """What a load run posted and what the local IVS saw."""

    accepted: set[str] = field(default_factory=set)
    refused: int = 0  # cues no replica accepted
    reasons: Counter[str] = field(default_factory=Counter)  # failed attempts, by status or error


async def post_load(
    http: aiohttp.ClientSession,
    urls: Sequence[str],
    channels: Sequence[str],
    *,
    seconds: float,
    cues_per_s: float,
    batch: int,
    result: LoadResult,
    prefix: str = "c",
) -> None:
    """Post cues with ids `<prefix><n>` to `channels` round robin, in batches, to `urls` in
    turn, at a steady rate; a failed request is tried on the next URL (same ids)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    requests = int(seconds * cues_per_s / batch)
    n = 0
    for k in range(requests):
        await asyncio.sleep(max(0.0, start + k * batch / cues_per_s - loop.time()))
        cues: list[dict[str, Any]] = []
        for _ in range(batch):
            cues.append(
                {
                    "channel": channels[n % len(channels)],
                    "type": "custom",
                    "id": f"{prefix}{n}",
                    "data": {"n": n},
                }
            )
            n += 1
        # Like a client behind a load balancer: a replica that fails passes the request on.
        for attempt in range(len(urls)):
            url = urls[(k + attempt) % len(urls)]
            try:
                async with http.post(f"{url}/v1/cues", json={"cues": cues}) as response:
                    if response.status == 202:
                        result.accepted.update(c["id"] for c in cues)
                        break
                    result.reasons[str(response.status)] += len(cues)
            except (aiohttp.ClientError, TimeoutError) as exc:
                result.reasons[type(exc).__name__] += len(cues)
        else:
            result.refused += len(cues)


def delivered_ids(events: Sequence[MetadataEvent]) -> list[str]:
    """Every cue id in every accepted PutMetadata payload, repeats included."""
    ids: list[str] = []
    for event in events:
        ids.extend(item["i"] for item in orjson.loads(event.metadata)["c"])
    return ids
