"""Redis as production runs it, under load through real replicas and the local IVS
(docs/scaling.md, "Supported Redis setups"): a standalone Redis with AOF killed and restarted,
and a Sentinel-managed primary killed and replaced by its replica."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

pytest.importorskip("redis")

from distributed_harness import (
    AOF_ALWAYS,
    LoadResult,
    Replica,
    audit,
    needs_redis,
    post_load,
    redis_process,
    redis_sentinel,
    replicas,
    wait_delivered,
)
from gateway_harness import new_channel

from metadata_gateway.local_ivs import LocalIvs

pytestmark = needs_redis

CHANNELS = 20
CUES_PER_S = 200.0
BATCH = 10
LOAD_S = 12.0
WARM_CUES = 200  # accepted before Redis is hurt: the replicas are sending by then
REDIS_DOWN_S = 1.5  # how long the standalone Redis stays dead
PROGRESS_S = 30.0  # longest wait for one step of a scenario on a loaded machine
SERVICE = "mg"
# A call is repeated only if it was made (or its settlement unwritten) when Redis or a replica
# died: its cue was first sent shortly before the outage, or while Redis was away.
REPEAT_BEFORE_S = 2.0


async def until(condition: Callable[[], Awaitable[bool] | bool], what: str) -> None:
    """Return once `condition` holds; fail after `PROGRESS_S`."""
    deadline = time.monotonic() + PROGRESS_S
    while True:
        value = condition()
        if not isinstance(value, bool):
            value = await value
        if value:
            return
        assert time.monotonic() < deadline, f"{what}: not within {PROGRESS_S} s"
        await asyncio.sleep(0.05)


def gateway_args(ivs: LocalIvs, url: str, *extra: str) -> list[str]:
    return [
        *("--endpoint-url", ivs.url, "--insecure-no-auth", "--log-level", "info"),
        *("--drain-timeout", "1", "--redis-url", url, *extra),
    ]


async def warm_load(
    http: aiohttp.ClientSession, group: list[Replica], arns: list[str], result: LoadResult
) -> asyncio.Task[None]:
    """Start the steady load on `group`; return its task once WARM_CUES were accepted."""
    load = asyncio.create_task(
        post_load(
            http,
            [r.url for r in group],
            arns,
            seconds=LOAD_S,
            cues_per_s=CUES_PER_S,
            batch=BATCH,
            result=result,
        )
    )
    await until(lambda: len(result.accepted) >= WARM_CUES, "load under way")
    return load


@pytest.mark.timeout(240)
async def test_aof_redis_killed_under_load_keeps_every_acknowledged_cue(
    make_local_ivs: Callable[..., Awaitable[LocalIvs]],
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    """A standalone Redis with `appendfsync always`, SIGKILLed under load and restarted from its
    AOF: every cue answered 202 is delivered, repeats only around the outage, and neither IVS
    quota is exceeded in any 1 s window."""
    ivs = await make_local_ivs(max_events=100_000)
    arns = [new_channel(ivs, f"aof{i}") for i in range(CHANNELS)]
    result = LoadResult()
    with redis_process(flags=AOF_ALWAYS) as server:
        async with replicas(2, gateway_args(ivs, server.url), tmp_path, http) as group:
            load = await warm_load(http, group, arns, result)
            accepted_before = len(result.accepted)
            server.kill()
            killed_at = time.time()
            await asyncio.sleep(REDIS_DOWN_S)  # the outage itself
            server.start()
            back_at = time.time()
            await load
            await wait_delivered(lambda: ivs.state.events, result.accepted)
    seen = audit(ivs.state.events)
    late = {i: seen.first_seen[i] - killed_at for i in seen.repeats}
    print(
        f"\naof: accepted={len(result.accepted)} (before kill {accepted_before}) "
        f"refused={result.refused} attempts={dict(result.reasons)} {seen.summary()} "
        f"outage={back_at - killed_at:.1f}s no_202_for={result.longest_gap(killed_at):.1f}s"
    )
    assert result.accepted <= set(seen.delivered)
    assert len(result.accepted) > accepted_before
    assert seen.worst_channel <= 5
    assert seen.worst_account <= 155
    assert all(-REPEAT_BEFORE_S <= t <= back_at - killed_at + 0.1 for t in late.values()), late


async def _replication_up(primary_port: int) -> bool:
    from redis.asyncio import Redis

    redis = Redis(host="127.0.0.1", port=primary_port)
    try:
        info = await redis.info("replication")
        return int(info.get("connected_slaves", 0)) >= 1 and "slave0" in info
    finally:
        await redis.aclose()


async def _ask_sentinel(port: int, *command: str) -> Any:
    """One SENTINEL command's answer."""
    from redis.asyncio import Redis

    redis = Redis(host="127.0.0.1", port=port, decode_responses=True)
    try:
        execute: Any = redis.execute_command  # untyped in redis-py
        return await execute("SENTINEL", *command)
    finally:
        await redis.aclose()


async def _sentinels_ready(ports: list[int]) -> bool:
    """Every Sentinel knows the other two and the replica: a failover can be agreed."""
    for port in ports:
        peers = await _ask_sentinel(port, "SENTINELS", SERVICE)
        known = await _ask_sentinel(port, "REPLICAS", SERVICE)
        if len(peers) < len(ports) - 1 or not known:
            return False
    return True


async def _primary_port(sentinel_port: int) -> int:
    _, port = await _ask_sentinel(sentinel_port, "GET-MASTER-ADDR-BY-NAME", SERVICE)
    return int(port)


@pytest.mark.timeout(240)
async def test_sentinel_failover_under_load_keeps_every_acknowledged_cue(
    make_local_ivs: Callable[..., Awaitable[LocalIvs]],
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    """A primary, one replica and three Sentinels (quorum 2); the replicas connect through
    `redis+sentinel://` and acknowledge a cue only once the Redis replica has it
    (`--redis-wait-replicas 1`). The primary is SIGKILLed under load: the Sentinels promote
    the replica, the gateway follows, the old primary returns as a replica, and every cue
    answered 202 is delivered within both IVS quotas."""
    ivs = await make_local_ivs(max_events=100_000)
    arns = [new_channel(ivs, f"sen{i}") for i in range(CHANNELS)]
    result = LoadResult()
    with (
        redis_process(flags=AOF_ALWAYS) as primary,
        redis_process(flags=AOF_ALWAYS, replica_of=primary.port) as replica,
        contextlib.ExitStack() as stack,
    ):
        # Sentinels learn of replicas from the primary's INFO: start them once it has one.
        await until(lambda: _replication_up(primary.port), "replication")
        ports = [
            stack.enter_context(redis_sentinel(primary.port, SERVICE, quorum=2, down_after_ms=1000))
            for _ in range(3)
        ]
        await until(lambda: _sentinels_ready(ports), "Sentinels know each other")
        url = "redis+sentinel://" + ",".join(f"127.0.0.1:{p}" for p in ports) + f"/{SERVICE}/0"
        args = gateway_args(ivs, url, "--redis-wait-replicas", "1")
        async with replicas(2, args, tmp_path, http) as group:
            load = await warm_load(http, group, arns, result)
            accepted_before = len(result.accepted)
            primary.kill()
            killed_at = time.time()

            async def promoted() -> bool:
                return await _primary_port(ports[0]) == replica.port

            await until(promoted, "the replica promoted")
            promoted_at = time.time()

            async def followed() -> bool:
                # Ready again: each replica's heartbeat reaches the new primary.
                for r in group:
                    async with http.get(f"{r.url}/readyz") as response:
                        if response.status != 200:
                            return False
                return True

            await until(followed, "the gateway following the promotion")
            followed_at = time.time()
            primary.start()  # comes back with its AOF; the Sentinels make it a replica
            await until(lambda: _replication_up(replica.port), "the old primary replicating")
            replicating_at = time.time()
            await until(lambda: len(result.accepted) > accepted_before + WARM_CUES, "202s again")
            await load
            await wait_delivered(lambda: ivs.state.events, result.accepted)
    seen = audit(ivs.state.events)
    late = {i: seen.first_seen[i] - killed_at for i in seen.repeats}
    print(
        f"\nsentinel: accepted={len(result.accepted)} (before kill {accepted_before}) "
        f"refused={result.refused} attempts={dict(result.reasons)} {seen.summary()} "
        f"promoted_after={promoted_at - killed_at:.1f}s "
        f"ready_after={followed_at - killed_at:.1f}s "
        f"replicated_after={replicating_at - killed_at:.1f}s "
        f"no_202_for={result.longest_gap(killed_at):.1f}s"
    )
    assert result.accepted <= set(seen.delivered)
    assert seen.worst_channel <= 5
    assert seen.worst_account <= 155
    assert all(-REPEAT_BEFORE_S <= t <= promoted_at - killed_at + 1.0 for t in late.values()), late
