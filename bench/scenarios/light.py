"""Scenario 4: latency the gateway adds at light load: one cue every 300 ms on each of 20 channels.

The channels' cues are spread evenly over each period, as independent producers would be; no
channel comes near its 5 calls/s, so every cue should leave as soon as it is accepted.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench import observe
from bench.analysis import max_in_window
from bench.context import Bench
from bench.cues import cue
from bench.delivery import accounting, latencies
from bench.load import OfferLog, offer_periodic

CUE_SIZE = 100
DRAIN_TIMEOUT_S = 10.0


async def run(bench: Bench) -> dict[str, Any]:
    """Post on every channel at its phase, wait for delivery, and time each cue to IVS."""
    profile = bench.profile
    count, period = profile.light_channels, profile.light_period_s
    async with bench.local_ivs("light-ivs") as ivs:
        arns = await bench.channels(ivs, count, "light")
        async with bench.gateway(ivs, "light-gateway", flags=("--drain-timeout", "1")) as gateway:
            logs = [OfferLog() for _ in arns]
            await asyncio.gather(
                *(
                    offer_periodic(
                        bench.http,
                        gateway,
                        lambda n, arn=arn: cue(arn, CUE_SIZE, serial=n),  # type: ignore[misc]
                        period=period,
                        phase=period * index / count,
                        duration=profile.light_s,
                        log=log,
                    )
                    for index, (arn, log) in enumerate(zip(arns, logs, strict=True))
                )
            )
            drained = await observe.wait_drained(bench.http, gateway, within=DRAIN_TIMEOUT_S)
            samples = await observe.metrics(bench.http, gateway)
        ours = set(arns)
        events = [e for e in await observe.events(bench.http, ivs.url) if e.channel in ours]
        stats = await observe.put_metadata_stats(bench.http, ivs.url)
    accepted = [s for log in logs for s in log.accepted]
    latency = latencies(accepted, events)
    by_channel = {arn: [e.time for e in events if e.channel == arn] for arn in arns}
    return {
        "channels": count,
        "period_ms": round(period * 1000),
        "cue_bytes": CUE_SIZE,
        "offered_cues": sum(log.offered for log in logs),
        "drained": drained,
        "calls": len(events),
        "cues_per_call": round(sum(len(e.ids) for e in events) / max(1, len(events)), 3),
        "added_latency_p50_ms": latency["p50_ms"],
        "added_latency_p99_ms": latency["p99_ms"],
        "latency": latency,
        "max_calls_in_any_1s_window": max(
            (max_in_window(times) for times in by_channel.values()), default=0
        ),
        "throttled": stats.get("ThrottlingException", 0),
        **accounting(accepted, events, samples),
    }
