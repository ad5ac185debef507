"""Scenario 6: the gateway's memory and CPU with 1k, 10k and 100k channels holding one cue each.

A fresh gateway per size: its memory after start-up and one delivered cue is the baseline, the
growth after one cue on each of N channels is what N channels cost. The cues then wait under the
account cap (155 calls/s drains 10k cues in about a minute), which is when CPU is sampled.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench import observe
from bench.analysis import rounded
from bench.context import Bench
from bench.cues import cue
from bench.load import MAX_BATCH, OfferLog, submit

CUE_SIZE = 100
MB = 1_000_000
INTAKE_CONCURRENCY = 4
INTAKE_TIMEOUT_S = 120.0


async def _one_size(bench: Bench, count: int) -> dict[str, Any]:
    profile = bench.profile
    async with bench.local_ivs(f"scale-ivs-{count}", max_channels=count + 1) as ivs:
        made = time.monotonic()
        arns = await bench.channels(ivs, count, f"scale{count}")
        made = time.monotonic() - made
        flags = (
            "--total-max-cues",
            str(max(100_000, 2 * count)),
            "--total-max-bytes",
            str(max(64 << 20, 400 * count)),
            "--drain-timeout",
            "0.5",
        )
        async with bench.gateway(ivs, f"scale-gateway-{count}", flags=flags) as gateway:
            log = OfferLog()
            deadline = time.monotonic() + INTAKE_TIMEOUT_S
            # The gateway has delivered its warm-up cue: intake, one PutMetadata and the
            # metrics have each run once, so the baseline holds what any running gateway does.
            await asyncio.sleep(0.2)
            before = gateway.usage()
            cues = [cue(arn, CUE_SIZE, serial=n) for n, arn in enumerate(arns)]
            limit = asyncio.Semaphore(INTAKE_CONCURRENCY)

            async def send(batch: list[dict[str, Any]]) -> None:
                async with limit:
                    await submit(bench.http, gateway, batch, log, deadline=deadline)

            await asyncio.gather(
                *(send(cues[i : i + MAX_BATCH]) for i in range(0, len(cues), MAX_BATCH))
            )
            loaded = gateway.usage()
            queued_before = (await observe.metrics(bench.http, gateway)).get(
                "metadata_gateway_queued_cues", 0.0
            )
            # CPU while the cues wait: only our own reads of /proc touch the process.
            start = gateway.usage()
            await asyncio.sleep(profile.scale_cpu_s)
            end = gateway.usage()
            samples = await observe.metrics(bench.http, gateway)
        stats = await observe.put_metadata_stats(bench.http, ivs.url)
    grown = loaded.rss_bytes - before.rss_bytes
    sent = samples.get('metadata_gateway_put_metadata_requests_total{outcome="ok"}', 0.0)
    return {
        "channels": count,
        "channels_created_s": round(made, 2),
        "accepted": len(log.accepted),
        "intake_s": round(loaded.at - before.at, 3),
        "rss_mb_baseline": round(before.rss_bytes / MB, 1),
        "rss_mb_loaded": round(loaded.rss_bytes / MB, 1),
        "rss_mb_after_wait": round(end.rss_bytes / MB, 1),
        "rss_mb_per_10k_channels": round(grown / MB * 10_000 / count, 2),
        "bytes_per_channel": round(grown / count),
        "intake_cpu_s": round(loaded.cpu_s - before.cpu_s, 3),
        "waiting_cues_at_start": int(queued_before),
        "waiting_cues_at_end": int(samples.get("metadata_gateway_queued_cues", 0.0)),
        "cpu_window_s": round(end.at - start.at, 3),
        "cpu_percent_waiting": rounded(100 * (end.cpu_s - start.cpu_s) / (end.at - start.at), 1),
        "put_metadata_ok": int(sent),
        "throttled": stats.get("ThrottlingException", 0),
    }


async def run(bench: Bench) -> dict[str, Any]:
    """Each size in turn, each with a fresh local IVS and gateway."""
    by_channels = {}
    for count in bench.profile.scale_channels:
        by_channels[str(count)] = await _one_size(bench, count)
    return {"by_channels": by_channels}
