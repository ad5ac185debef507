"""Processes for the distributed-mode tests: a throwaway redis-server and gateway replicas."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from metadata_gateway.local_ivs import MetadataEvent
from metadata_gateway.local_ivs.events import max_in_window as max_in_window

needs_redis = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server is not installed"
)
START_TIMEOUT_S = 15.0
REDIS_TEST_FLAGS = ("--save", "", "--appendonly", "no")  # tests only; production wants AOF
# Redis as production runs it: every acknowledged write in the AOF, fsynced before the reply.
AOF_ALWAYS = ("--save", "", "--appendonly", "yes", "--appendfsync", "always")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisProcess:
    """A redis-server on a fixed random loopback port with a temp dir (kept across restarts),
    no persistence unless `flags` say otherwise; a replica of `replica_of` (a port) if given."""

    def __init__(
        self,
        directory: str,
        *,
        flags: Sequence[str] = REDIS_TEST_FLAGS,
        replica_of: int | None = None,
    ) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.port = free_port()
        self._argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", directory]
        self._argv += flags
        if replica_of is not None:
            self._argv += ["--replicaof", "127.0.0.1", str(replica_of)]
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

    def kill(self) -> None:
        """SIGKILL: what the AOF holds is all that survives."""
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait()

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
def redis_process(
    *, flags: Sequence[str] = REDIS_TEST_FLAGS, replica_of: int | None = None
) -> Iterator[RedisProcess]:
    """A started `RedisProcess`, stopped (and its directory removed) afterwards."""
    with tempfile.TemporaryDirectory(prefix="mg-redis-") as tmp:
        server = RedisProcess(tmp, flags=flags, replica_of=replica_of)
        try:
            server.start()
            yield server
        finally:
            server.stop()


@contextlib.contextmanager
def redis_sentinel(
    primary_port: int, service: str, *, quorum: int = 1, down_after_ms: int = 30_000
) -> Iterator[int]:
    """A Redis Sentinel (redis-server --sentinel) watching the primary on `primary_port`; its
    port. `down_after_ms` without an answer, `quorum` Sentinels agree the primary is down."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="mg-sentinel-") as tmp:
        conf = Path(tmp) / "sentinel.conf"
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {tmp}\n"
            f"sentinel monitor {service} 127.0.0.1 {primary_port} {quorum}\n"
            f"sentinel down-after-milliseconds {service} {down_after_ms}\n"
            f"sentinel failover-timeout {service} 10000\n"
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
    answered_at: list[float] = field(default_factory=list)  # wall clock of each 202

    def longest_gap(self, after: float) -> float:
        """The longest time without a 202 from `after` on (a failover's cost to clients)."""
        times = [after, *sorted(t for t in self.answered_at if t > after)]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


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
                        result.answered_at.append(time.time())
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


@dataclass(frozen=True)
class Audit:
    """What the local IVS received, as the distributed guarantees are stated."""

    delivered: Counter[str]  # cue id -> times sent
    first_seen: dict[str, float]  # cue id -> arrival of its first call
    worst_channel: int  # most calls on one channel in any 1 s window
    worst_account: int  # most calls on the account in any 1 s window
    calls: int

    @property
    def repeats(self) -> dict[str, int]:
        """Cue ids sent more than once, with the number of extra sends."""
        return {i: n - 1 for i, n in self.delivered.items() if n > 1}

    def summary(self) -> str:
        return (
            f"calls={self.calls} delivered={len(self.delivered)} "
            f"repeats={sum(self.repeats.values())} max/channel/s={self.worst_channel} "
            f"max/account/s={self.worst_account}"
        )


def audit(events: Sequence[MetadataEvent]) -> Audit:
    """Count deliveries and repeats, and the worst 1 s windows per channel and account."""
    first_seen: dict[str, float] = {}
    per_channel: dict[str, list[float]] = {}
    for event in events:
        for item in orjson.loads(event.metadata)["c"]:
            first_seen.setdefault(item["i"], event.time)
        per_channel.setdefault(event.channel_arn, []).append(event.time)
    return Audit(
        delivered=Counter(delivered_ids(events)),
        first_seen=first_seen,
        worst_channel=max((max_in_window(t) for t in per_channel.values()), default=0),
        worst_account=max_in_window([e.time for e in events]),
        calls=len(events),
    )


async def wait_delivered(
    events: Callable[[], Sequence[MetadataEvent]],
    accepted: set[str],
    *,
    dropped: Callable[[], set[str]] = set,
    stall_s: float = 10.0,
) -> None:
    """Return once every accepted cue reached IVS (or was reported dropped); fail once
    deliveries stall that long with some missing, however loaded the machine."""
    delivered = 0
    progress_at = time.monotonic()
    while True:
        seen = set(delivered_ids(events()))
        missing = accepted - seen - dropped()
        if not missing:
            return
        if len(seen) > delivered:
            delivered, progress_at = len(seen), time.monotonic()
        elif time.monotonic() - progress_at > stall_s:
            raise AssertionError(
                f"{len(missing)} accepted cues never delivered nor dropped "
                f"(none delivered in the last {stall_s} s), e.g. {sorted(missing)[:5]}"
            )
        await asyncio.sleep(0.1)


async def wait_split(url: str, *, replicas: int, partitions: int = 16) -> None:
    """Return once every partition's lease is held, by `replicas` replicas with their shares
    settled (⌊P/n⌋ or ⌈P/n⌉ each): two holders alone may be a split still moving, one replica
    handing partitions over to the other."""
    from redis.asyncio import Redis

    from metadata_gateway.distributed.keys import PartitionKeys

    redis = Redis.from_url(url)
    try:
        deadline = time.monotonic() + 10.0
        while True:
            holders = await redis.mget([PartitionKeys(p).lease for p in range(partitions)])
            shares = Counter(holders).values()
            if None not in holders and len(shares) == replicas and max(shares) - min(shares) <= 1:
                return
            assert time.monotonic() < deadline, f"partition leases: {holders}"
            await asyncio.sleep(0.05)
    finally:
        await redis.aclose()
