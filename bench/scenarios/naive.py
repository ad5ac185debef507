"""Scenario 2: the naive client, as AWS's samples do it: one put_metadata per cue, default retries.

The same demand as scenario 1 (10x what one channel can deliver) goes straight to the local IVS
through one aiobotocore client left at its defaults: legacy retry mode (5 attempts, a throttled
call retried after a random exponential back-off) and a pool of 10 connections.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

from aiobotocore.session import AioSession
from botocore.exceptions import BotoCoreError, ClientError

from bench import observe
from bench.analysis import max_in_window, ms, percentile, rate_under_limit, rounded
from bench.context import Bench
from bench.cues import cue, cues_per_call
from bench.delivery import tightest_span_ms
from bench.procs import LOCAL_AWS_ENV, Child
from bench.scenarios.saturated import CHANNEL_RATE
from metadata_gateway.core.envelope import encode_item, encode_payload

TICK_S = 0.02


async def _one_size(bench: Bench, ivs: Child, size: int) -> dict[str, Any]:
    profile = bench.profile
    (arn,) = await bench.channels(ivs, 1, f"naive-{size}")
    demand = profile.overload * CHANNEL_RATE * cues_per_call(size)
    started: dict[str, float] = {}
    outcomes: Counter[str] = Counter()
    session = AioSession()
    async with session.create_client(
        "ivs",
        region_name=LOCAL_AWS_ENV["AWS_DEFAULT_REGION"],
        endpoint_url=ivs.url,
        aws_access_key_id=LOCAL_AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
    ) as client:
        retries = dict(client.meta.config.retries or {})
        pool = client.meta.config.max_pool_connections

        async def put(n: int) -> None:
            cue_id = f"n{n}"
            payload = encode_payload(
                [encode_item(cue_id, "custom", cue(arn, size, serial=n)["data"])]
            )
            started[cue_id] = time.time()
            try:
                await client.put_metadata(channelArn=arn, metadata=payload.decode())
                outcomes["ok"] += 1
            except ClientError as exc:
                outcomes[str(exc.response.get("Error", {}).get("Code", "ClientError"))] += 1
            except BotoCoreError as exc:
                outcomes[type(exc).__name__] += 1

        loop = asyncio.get_running_loop()
        tasks: list[asyncio.Task[None]] = []
        offer_started = time.time()
        start = loop.time()
        owed, tick = 0.0, start
        while loop.time() < start + profile.naive_s:
            owed += demand * TICK_S
            while owed >= 1:
                owed -= 1
                tasks.append(asyncio.create_task(put(len(tasks)), name="naive-put"))
            tick += TICK_S
            await asyncio.sleep(max(0.0, tick - loop.time()))
        offer_ended = time.time()
        _, pending = await asyncio.wait(tasks, timeout=profile.naive_tail_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    events = [e for e in await observe.events(bench.http, ivs.url) if e.channel == arn]
    delivered = {cue_id: e.time for e in events for cue_id in e.ids}
    steady = [
        e.time
        for e in events
        if offer_started + profile.saturated_warmup_s <= e.time <= offer_ended
    ]
    calls_per_s = rate_under_limit(steady, CHANNEL_RATE)
    waits = [delivered[i] - started[i] for i in delivered if i in started]
    return {
        "cue_bytes": size,
        "channel": arn,
        "client_retries": retries,
        "client_max_pool_connections": pool,
        "demand_cues_per_s": round(demand, 1),
        "offered_cues": len(tasks),
        "delivered": len(delivered),
        "naive_delivered_cues_per_s": rounded(calls_per_s),  # one cue per call
        "failed_after_retries": {k: v for k, v in outcomes.items() if k != "ok"},
        "unfinished_at_deadline": len(pending),
        "naive_lost_cues": len(tasks) - len(delivered),
        "max_calls_in_any_1s_window": max_in_window(e.time for e in events),
        "tightest_6_calls_ms": tightest_span_ms(events, CHANNEL_RATE),
        "latency_p50_ms": ms(percentile(waits, 50)),
        "latency_p99_ms": ms(percentile(waits, 99)),
    }


async def run(bench: Bench) -> dict[str, Any]:
    """Each size in turn (the client's CPU is the limit; sharing it would blur the figures)."""
    by_size: dict[str, Any] = {}
    for size in bench.profile.naive_sizes:
        async with bench.local_ivs(f"naive-ivs-{size}") as ivs:
            figures = await _one_size(bench, ivs, size)
            stats = await observe.put_metadata_stats(bench.http, ivs.url)
        figures["naive_throttled"] = stats.get("ThrottlingException", 0)
        figures["ivs_answers"] = stats
        by_size[str(size)] = figures
    return {"by_size": by_size}
