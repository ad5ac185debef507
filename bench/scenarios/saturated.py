"""Scenario 1: one channel offered 10x what it can deliver, for cues of each size.

Each size gets its own gateway (so the drop counters are its own) in front of one local IVS; the
channels never share a limit below the account's, which three channels cannot reach.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bench import observe
from bench.analysis import rate_under_limit, rounded
from bench.context import Bench
from bench.cues import cue, cues_per_call, fill_at
from bench.delivery import accounting, calls_in_window, latencies, tightest_span_ms
from bench.load import OfferLog, offer_paced
from bench.observe import Event
from bench.procs import Child
from metadata_gateway.core.envelope import ENVELOPE_OVERHEAD, MAX_METADATA_BYTES

CHANNEL_RATE = 5  # IVS PutMetadata calls/s per channel
DRAIN_GRACE_S = 10.0


def steady_figures(events: list[Event], start: float, end: float) -> dict[str, Any]:
    """Rates and fill over the events in [start, end], while the channel's queue was never empty."""
    steady = [e for e in events if start <= e.time <= end]
    calls = len(steady)
    if calls <= CHANNEL_RATE:
        return {"steady_calls": calls}
    cues_per_call = sum(len(e.ids) for e in steady) / calls
    calls_per_s = rate_under_limit([e.time for e in steady], CHANNEL_RATE)
    sizes = [(e.size - ENVELOPE_OVERHEAD - (len(e.ids) - 1)) / len(e.ids) for e in steady]
    return {
        "steady_calls": calls,
        "steady_span_s": round(steady[-1].time - steady[0].time, 3),
        "delivered_cues_per_s": rounded(calls_per_s and calls_per_s * cues_per_call, 2),
        "channel_calls_per_s": rounded(calls_per_s),
        "payload_fill": round(sum(e.size for e in steady) / (calls * MAX_METADATA_BYTES), 4),
        "cues_per_call": round(cues_per_call, 3),
        "mean_cue_bytes": round(sum(sizes) / len(sizes), 1),
        # Full batches of cues of the mean size observed: what perfect packing would reach.
        "ideal_payload_fill": round(fill_at(sum(sizes) / len(sizes)), 4),
    }


def queue_bound(bench: Bench, size: int) -> int:
    """The channel queue bound for cues of `size` bytes: `queue_s` of full-rate delivery."""
    fits = CHANNEL_RATE * cues_per_call(size)
    return max(2 * cues_per_call(size), round(fits * bench.profile.queue_s))


async def _one_size(bench: Bench, ivs: Child, size: int) -> dict[str, Any]:
    flags = ("--channel-max-cues", str(queue_bound(bench, size)), "--drain-timeout", "1")
    (arn,) = await bench.channels(ivs, 1, f"saturated-{size}")
    async with bench.gateway(ivs, f"saturated-gateway-{size}", flags=flags) as gateway:

        def drain(within: float) -> Awaitable[bool]:
            return observe.wait_drained(bench.http, gateway, within=within)

        return await drive(bench, ivs, arn, size, [gateway], drain)


async def drive(
    bench: Bench,
    ivs: Child,
    arn: str,
    size: int,
    gateways: Sequence[Child],
    drain: Callable[[float], Awaitable[bool]],
) -> dict[str, Any]:
    """Offer 10x what fits on `arn` through `gateways` (in turn), wait (`drain(within)`) until
    they hold nothing, read IVS's record."""
    profile = bench.profile
    fits = CHANNEL_RATE * cues_per_call(size)
    log = OfferLog()
    await offer_paced(
        bench.http,
        gateways,
        lambda n: cue(arn, size, serial=n),
        rate=profile.overload * fits,
        duration=profile.saturated_s,
        log=log,
    )
    drained = await drain(profile.queue_s * 2 + DRAIN_GRACE_S)
    samples = await observe.metrics_sum(bench.http, gateways)
    events = [e for e in await observe.events(bench.http, ivs.url) if e.channel == arn]
    figures: dict[str, Any] = {
        "cue_bytes": size,
        "channel": arn,
        "fits_cues_per_s": fits,
        "demand_cues_per_s": round(profile.overload * fits, 1),
        "channel_queue_bound": queue_bound(bench, size),
        "drained": drained,
        **log.as_json(),
        **steady_figures(events, log.started + profile.saturated_warmup_s, log.ended),
        "calls": len(events),
        "max_calls_in_any_1s_window": calls_in_window(events),
        "tightest_6_calls_ms": tightest_span_ms(events, CHANNEL_RATE),
        **accounting(log.accepted, events, samples),
        "latency": latencies(log.accepted, events),
    }
    return figures


async def one(bench: Bench, size: int) -> dict[str, Any]:
    """One size alone, on a local IVS of its own (the single process beside the replicas)."""
    async with bench.local_ivs(f"saturated-{size}-ivs") as ivs:
        figures = await _one_size(bench, ivs, size)
        stats = await observe.put_metadata_stats(bench.http, ivs.url)
    figures["throttled"] = stats.get("ThrottlingException", 0)
    figures["ivs_answers"] = stats
    return figures


async def run(bench: Bench) -> dict[str, Any]:
    """All sizes at once, each with its own gateway and channel; throttles counted by IVS."""
    async with bench.local_ivs("saturated-ivs") as ivs:
        results = await asyncio.gather(*(_one_size(bench, ivs, s) for s in bench.profile.sizes))
        stats = await observe.put_metadata_stats(bench.http, ivs.url)
    # One IVS for all sizes: its throttle count covers them together, and must be 0 anyway.
    for figures in results:
        figures["throttled"] = stats.get("ThrottlingException", 0)
        figures["ivs_answers"] = stats
    return {"by_size": {str(f["cue_bytes"]): f for f in results}}
