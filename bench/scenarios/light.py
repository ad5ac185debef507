"""Scenario 4: latency the gateway adds at light load: one cue every 300 ms on each of 20 channels.

The channels' cues are spread evenly over each period, as independent producers would be; no
channel comes near its 5 calls/s, so every cue should leave as soon as it is accepted.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench import observe
from bench.analysis import max_in_window, percentile
from bench.context import Bench
from bench.cues import cue
from bench.delivery import accounting, latencies
from bench.load import OfferLog, Submitted, offer_periodic

CUE_SIZE = 100
DRAIN_TIMEOUT_S = 10.0
SCHEDULED_PER_CHANNEL = 3  # cues with a not_before on every channel, a second apart
SCHEDULE_SPACING_S = 1.0  # keeps a channel's calls (periodic + scheduled) under 5 in a second
SCHEDULE_LEAD_S = 0.5  # far enough ahead that every cue is held before its moment


async def offer_scheduled(
    bench: Bench, gateway: Any, arns: list[str]
) -> tuple[dict[str, float], list[Submitted]]:
    """Post cues held until moments spread like the periodic load; their not_before by id."""
    period, count = bench.profile.light_period_s, len(arns)
    start = time.time() + SCHEDULE_LEAD_S
    moments: dict[str, float] = {}
    cues = []
    submitted: list[Submitted] = []
    for index, arn in enumerate(arns):
        for step in range(SCHEDULED_PER_CHANNEL):
            # Half a period off the periodic cues' phase, so that each is timed on its own.
            moment = start + step * SCHEDULE_SPACING_S + period * (index + 0.5) / count
            cue_id = f"sched-{index}-{step}"
            moments[cue_id] = moment
            cues.append({**cue(arn, CUE_SIZE), "id": cue_id, "not_before": round(moment * 1000)})
            submitted.append(Submitted(arn, cue_id, sent_at=moment, accepted_at=moment))
    for offset in range(0, len(cues), 100):
        async with bench.http.post(
            f"{gateway.url}/v1/cues",
            json={"cues": cues[offset : offset + 100]},
            headers=gateway.headers,
        ) as response:
            response.raise_for_status()
    # not_before travels in whole milliseconds: the moment the gateway holds them to.
    held = {cue_id: round(moment * 1000) / 1000 for cue_id, moment in moments.items()}
    return held, submitted


def schedule_lags_ms(moments: dict[str, float], events: list[Any]) -> list[float]:
    """IVS's arrival minus not_before, for every scheduled cue that arrived."""
    arrivals: dict[str, float] = {}
    for event in events:
        for cue_id in event.ids:
            if cue_id in moments:
                arrivals.setdefault(cue_id, event.time)
    return [(arrivals[i] - moments[i]) * 1000 for i in moments if i in arrivals]


async def run(bench: Bench) -> dict[str, Any]:
    """Post on every channel at its phase, wait for delivery, and time each cue to IVS."""
    profile = bench.profile
    count, period = profile.light_channels, profile.light_period_s
    async with bench.local_ivs("light-ivs") as ivs:
        arns = await bench.channels(ivs, count, "light")
        async with bench.gateway(ivs, "light-gateway", flags=("--drain-timeout", "1")) as gateway:
            logs = [OfferLog() for _ in arns]
            # Their moments fall while the periodic load runs (light_s >= 3 s in every profile).

            moments, scheduled = await offer_scheduled(bench, gateway, arns)
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
    lags = sorted(schedule_lags_ms(moments, events))
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
        # Issue 8's figure: from not_before to IVS accepting the cue, at this light load.
        "scheduled_cues": len(moments),
        "scheduled_arrived": len(lags),
        "schedule_lag_p50_ms": round(percentile(lags, 50) or 0.0, 2) if lags else None,
        "schedule_lag_p99_ms": round(percentile(lags, 99) or 0.0, 2) if lags else None,
        "schedule_lag_min_ms": round(lags[0], 2) if lags else None,
        "latency": latency,
        "max_calls_in_any_1s_window": max(
            (max_in_window(times) for times in by_channel.values()), default=0
        ),
        "throttled": stats.get("ThrottlingException", 0),
        # The scheduled cues are accounted for too: none may be lost.
        **accounting([*accepted, *scheduled], events, samples),
    }
