"""Scenario 7: scenarios 1 (100 B cues) and 3 again, with 3 replicas sharing one Redis, each
beside a single process run in the same way, one after the other, on the same machine.

Each part starts its own local IVS, a throwaway redis-server and three `serve --redis-url`
replicas, and posts its load to the replicas in turn, as a round-robin load balancer would. The
figures are computed exactly as for the single process, from the same IVS record, so that the two
can be read side by side. A third part spreads the busy channels unevenly over the replicas (30
channels in partitions one replica owns, 3 in another's, none in the third's), where a fair
share of the account has to follow the channels, not the replicas. Skipped, with a note, when
redis-server is not installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import AsyncExitStack
from typing import Any

import orjson

from bench import observe, procs
from bench.context import Bench
from bench.procs import Child
from bench.scenarios import account, saturated
from metadata_gateway.config import Settings

REPLICAS = 3
SIZE = 100  # the summary's cue size
OWNERSHIP_SETTLE_S = 1.0  # replicas heartbeat every 0.5 s; let the partitions find their owners
WARM_TIMEOUT_S = 15.0
POLL_S = 0.1
QUIET_POLLS = 3  # consecutive polls with nothing queued anywhere before we call it drained
UNEVEN = (30, 3)  # busy channels owned by one replica, and by another; the third owns none
UNEVEN_POOL = 60  # channels created at a time until enough fall in the chosen partitions
UNEVEN_POOL_MAX = 1_000


def skipped_reason() -> str | None:
    """Why the scenario cannot run here, or None."""
    if procs.redis_binary() is None:
        return "redis-server is not installed (apt-get install redis-server)"
    return None


@dataclasses.dataclass(frozen=True, slots=True)
class ReplicaSet:
    """The running replicas and the Redis they share."""

    group: list[Child]
    redis_url: str


@contextlib.asynccontextmanager
async def replica_set(
    bench: Bench, ivs: Child, name: str, flags: Sequence[str]
) -> AsyncIterator[ReplicaSet]:
    """A fresh redis-server and `REPLICAS` warmed-up gateways on it; all stopped afterwards
    (the replicas first, then Redis)."""
    async with (
        procs.redis_server(log_dir=bench.log_dir, name=f"{name}-redis") as url,
        AsyncExitStack() as stack,
    ):
        # Started together; if one fails, the task group cancels the others' start, which
        # stops their processes, and those already started are stopped by the stack.
        async with asyncio.TaskGroup() as starting:
            started = [
                starting.create_task(
                    stack.enter_async_context(
                        procs.gateway(
                            ivs.url,
                            log_dir=bench.log_dir,
                            name=f"{name}-replica{i}",
                            flags=[*flags, "--redis-url", url],
                            auth=bench.auth,
                        )
                    )
                )
                for i in range(REPLICAS)
            ]
        group = [task.result() for task in started]
        await asyncio.sleep(OWNERSHIP_SETTLE_S)
        await _warm_up(bench, ivs, group, name)
        yield ReplicaSet(group, url)


async def _warm_up(bench: Bench, ivs: Child, group: list[Child], name: str) -> None:
    # As for one gateway (see `Bench.gateway`): one cue through each replica, on a channel of
    # its own, delivered before anything is measured. In distributed mode the replica that
    # accepts a cue is not always the one that sends it, so delivery is read from IVS.
    arns = await observe.create_channels(bench.http, ivs.url, len(group), prefix=f"warm-{name}")
    for replica, arn in zip(group, arns, strict=True):
        replica.warm_channel = arn
        async with bench.http.post(
            f"{replica.url}/v1/cues",
            data=orjson.dumps({"channel": arn, "type": "custom", "data": {"warm": True}}),
            headers={"Content-Type": "application/json", **replica.headers},
        ) as response:
            if response.status != 202:
                raise RuntimeError(f"{replica.name} refused the warm-up cue: {response.status}")
    deadline = time.monotonic() + WARM_TIMEOUT_S
    wanted = set(arns)
    while {e.channel for e in await observe.events(bench.http, ivs.url)} < wanted:
        if time.monotonic() >= deadline:
            raise RuntimeError(f"{name}: the replicas did not deliver their warm-up cues")
        await asyncio.sleep(POLL_S)


async def wait_all_drained(bench: Bench, group: Sequence[Child], within: float) -> bool:
    """Wait until no replica holds a cue, several polls in a row (a cue accepted into Redis
    reaches its owner's queue a moment later); False if `within` s passed."""
    deadline = time.monotonic() + within
    quiet = 0
    while quiet < QUIET_POLLS:
        samples = await observe.metrics_sum(bench.http, group)
        quiet = quiet + 1 if samples.get("metadata_gateway_queued_cues", 1.0) == 0 else 0
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(POLL_S)
    return True


async def _saturated(bench: Bench) -> dict[str, Any]:
    bound = saturated.queue_bound(bench, SIZE)
    flags = ("--channel-max-cues", str(bound), "--drain-timeout", "1")
    async with bench.local_ivs("distributed-saturated-ivs") as ivs:
        (arn,) = await bench.channels(ivs, 1, f"distributed-saturated-{SIZE}")
        async with replica_set(bench, ivs, "distributed-saturated", flags) as replicas:
            group = replicas.group

            def drain(within: float) -> Awaitable[bool]:
                return wait_all_drained(bench, group, within)

            figures = await saturated.drive(bench, ivs, arn, SIZE, group, drain)
        stats = await observe.put_metadata_stats(bench.http, ivs.url)
    figures["throttled"] = stats.get("ThrottlingException", 0)
    figures["ivs_answers"] = stats
    return figures


async def _account(bench: Bench) -> dict[str, Any]:
    async with bench.local_ivs("distributed-account-ivs") as ivs:
        arns = await bench.channels(ivs, bench.profile.account_channels, "distributed-account")
        flags = ("--drain-timeout", "1")
        async with replica_set(bench, ivs, "distributed-account", flags) as replicas:
            group = replicas.group

            def drain(within: float) -> Awaitable[bool]:
                return wait_all_drained(bench, group, within)

            return await account.drive(bench, ivs, arns, group, drain)


async def _uneven(bench: Bench) -> dict[str, Any]:
    async with bench.local_ivs("distributed-uneven-ivs") as ivs:
        flags = ("--drain-timeout", "1")
        async with replica_set(bench, ivs, "distributed-uneven", flags) as replicas:
            group = replicas.group
            arns, owners = await _unevenly_owned(bench, ivs, replicas.redis_url)

            def drain(within: float) -> Awaitable[bool]:
                return wait_all_drained(bench, group, within)

            figures = await account.drive(bench, ivs, arns, group, drain)
    figures["channels_per_replica"] = owners
    return figures


async def _unevenly_owned(bench: Bench, ivs: Child, redis_url: str) -> tuple[list[str], list[int]]:
    """Channels whose partitions `UNEVEN` replicas own: the first count owned by one replica,
    the next by another; and how many each replica owns."""
    from redis.asyncio import Redis

    from metadata_gateway.distributed.keys import PartitionKeys, partition_of

    partitions = Settings().redis_partitions
    redis = Redis.from_url(redis_url)
    try:
        found = await redis.mget([PartitionKeys(p).lease for p in range(partitions)])
    finally:
        await redis.aclose()
    leases: list[Any] = list(found)
    holders = sorted({lease for lease in leases if lease is not None})
    if len(holders) != REPLICAS:
        raise RuntimeError(f"partition leases held by {len(holders)} replicas, not {REPLICAS}")
    by_owner: dict[Any, list[str]] = {holder: [] for holder in holders}
    created = 0
    chosen = holders[: len(UNEVEN)]
    while any(len(by_owner[h]) < n for h, n in zip(chosen, UNEVEN, strict=True)):
        if created >= UNEVEN_POOL_MAX:
            raise RuntimeError("no channels fell in the chosen replicas' partitions")
        pool = await bench.channels(ivs, UNEVEN_POOL, f"distributed-uneven-{created}")
        created += UNEVEN_POOL
        for arn in pool:
            by_owner[leases[partition_of(arn, partitions)]].append(arn)
    arns = [arn for h, n in zip(chosen, UNEVEN, strict=True) for arn in by_owner[h][:n]]
    return arns, [*UNEVEN, *([0] * (REPLICAS - len(UNEVEN)))]


async def _single_uneven(bench: Bench) -> dict[str, Any]:
    """The uneven part's load (its channel count) on one process: nothing to spread there."""
    async with bench.local_ivs("uneven-ivs") as ivs:
        arns = await bench.channels(ivs, sum(UNEVEN), "uneven")
        async with bench.gateway(ivs, "uneven-gateway", flags=("--drain-timeout", "1")) as gw:

            def drain(within: float) -> Awaitable[bool]:
                return observe.wait_drained(bench.http, gw, within=within)

            return await account.drive(bench, ivs, arns, [gw], drain)


async def run(bench: Bench) -> dict[str, Any]:
    """Each part on one process, then on fresh replicas, Redis and IVS: the saturated channel,
    the account cap, and the account cap with the channels spread unevenly."""
    reason = skipped_reason()
    if reason is not None:
        return {"skipped": reason}
    profile = bench.profile
    if not profile.distributed:
        return {"skipped": f"not in the {profile.name} profile; the full run has it"}
    bench = dataclasses.replace(
        bench,
        profile=dataclasses.replace(
            profile,
            saturated_s=profile.distributed_saturated_s,
            account_s=profile.distributed_account_s,
        ),
    )
    single_saturated = await saturated.one(bench, SIZE)
    replicas_saturated = await _saturated(bench)
    single_account = await account.run(bench)
    replicas_account = await _account(bench)
    single_uneven = await _single_uneven(bench)
    replicas_uneven = await _uneven(bench)
    return {
        "replicas": REPLICAS,
        "load_balancing": "round robin over the replicas, per request",
        "saturated_s": profile.distributed_saturated_s,
        "account_s": profile.distributed_account_s,
        "saturated": {"by_size": {str(SIZE): replicas_saturated}},
        "account": replicas_account,
        "uneven": replicas_uneven,
        # The same parts on one process, in this run, so that the two sides compare.
        "single_process": {
            "saturated": {"by_size": {str(SIZE): single_saturated}},
            "account": single_account,
            "uneven": single_uneven,
        },
    }
