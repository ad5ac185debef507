"""Scenario 3: 200 busy channels on one account: the 155 calls/s cap, and how fairly it is shared.

Every channel is given enough cues up front to stay backlogged for the whole measurement, so the
account's budget, not the offered load, decides who sends. Shares are counted over a whole number
of round-robin turns (k x 200 consecutive calls), so that where a window happens to cut a turn
does not count as unfairness.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bench import observe
from bench.analysis import jain, max_in_window, rate_under_limit, rounded
from bench.context import Bench
from bench.cues import cue, cues_per_call
from bench.delivery import accounting, latencies, tightest_span_ms
from bench.load import MAX_BATCH, OfferLog, submit
from bench.procs import Child

ACCOUNT_RATE = 155  # IVS PutMetadata calls/s per account
CUE_SIZE = 100
PREFILL_CONCURRENCY = 4
SETTLE_S = 1.0  # after the prefill, before the contended window opens
DRAIN_GRACE_S = 15.0
PREFILL_TIMEOUT_S = 60.0


async def run(bench: Bench) -> dict[str, Any]:
    """Prefill every channel, let the gateway drain them all, then read IVS's record."""
    async with bench.local_ivs("account-ivs") as ivs:
        arns = await bench.channels(ivs, bench.profile.account_channels, "account")
        flags = ("--drain-timeout", "1")
        async with bench.gateway(ivs, "account-gateway", flags=flags) as gateway:

            def drain(within: float) -> Awaitable[bool]:
                return observe.wait_drained(bench.http, gateway, within=within)

            return await drive(bench, ivs, arns, [gateway], drain)


async def drive(
    bench: Bench,
    ivs: Child,
    arns: list[str],
    gateways: Sequence[Child],
    drain: Callable[[float], Awaitable[bool]],
) -> dict[str, Any]:
    """Prefill `arns` through `gateways` (batch k to gateway k mod n), wait (`drain(within)`)
    until they hold nothing, and read the account's figures from IVS's record."""
    profile = bench.profile
    count = len(arns)
    share = ACCOUNT_RATE / count  # calls/s each channel gets when all are busy
    per_channel = math.ceil(share * cues_per_call(CUE_SIZE) * (profile.account_s + 2 * SETTLE_S))
    log = OfferLog()
    # Cue n goes to channel n % count: every request feeds 100 channels, so all of
    # them are backlogged within the prefill rather than one after another.
    cues = [cue(arns[n % count], CUE_SIZE, serial=n) for n in range(count * per_channel)]
    batches = [cues[i : i + MAX_BATCH] for i in range(0, len(cues), MAX_BATCH)]
    limit = asyncio.Semaphore(PREFILL_CONCURRENCY)
    deadline = time.monotonic() + PREFILL_TIMEOUT_S

    async def send(k: int, batch: list[dict[str, Any]]) -> None:
        async with limit:
            await submit(bench.http, gateways[k % len(gateways)], batch, log, deadline=deadline)

    log.started = time.time()
    await asyncio.gather(*(send(k, b) for k, b in enumerate(batches)))
    log.ended = prefilled = time.time()
    log.offered = len(cues)
    drained = await drain(profile.account_s * 2 + DRAIN_GRACE_S)
    samples = await observe.metrics_sum(bench.http, gateways)
    every = await observe.events(bench.http, ivs.url)
    stats = await observe.put_metadata_stats(bench.http, ivs.url)
    ours = set(arns)
    events = [e for e in every if e.channel in ours]
    # The contended window: after the prefill settled, until the first channel ran dry.
    last_call = {arn: max(e.time for e in events if e.channel == arn) for arn in arns}
    opens, closes = prefilled + SETTLE_S, min(last_call.values())
    window = [e for e in events if opens <= e.time < closes]
    turns = len(window) // count
    counted = window[: turns * count]
    shares = Counter(e.channel for e in counted)
    calls_per_s = rate_under_limit([e.time for e in window], ACCOUNT_RATE)
    return {
        "channels": count,
        "cue_bytes": CUE_SIZE,
        "cues_per_channel": per_channel,
        "prefill_s": round(log.ended - log.started, 3),
        **{key: value for key, value in log.as_json().items() if "refused" in key},
        "drained": drained,
        "window_s": round(closes - opens, 3),
        "window_calls": len(window),
        "account_calls_per_s": rounded(calls_per_s),
        "account_utilization": rounded(calls_per_s and calls_per_s / ACCOUNT_RATE, 4),
        # The gateway counts a call against the window from its start until 1 s after its
        # answer, so it can reach at most 1 / (1 s + margin + call time) of the limit.
        "mean_call_ms": observe.mean_call_ms(samples),
        # Every call on the account counts here, the warm-up call too: IVS counts them all.
        "max_account_calls_in_any_1s_window": max_in_window(e.time for e in every),
        "tightest_156_calls_ms": tightest_span_ms(every, ACCOUNT_RATE),
        "fairness_turns": turns,
        "fairness": rounded(jain([shares.get(arn, 0) for arn in arns]), 5),
        "fairness_whole_window": rounded(
            jain([sum(1 for e in window if e.channel == arn) for arn in arns]), 5
        ),
        "calls_per_channel_min_max": [
            min(shares.values(), default=0),
            max(shares.values(), default=0),
        ],
        "throttled": stats.get("ThrottlingException", 0),
        "ivs_answers": stats,
        **accounting(log.accepted, events, samples),
        "latency": latencies(log.accepted, events),
    }
