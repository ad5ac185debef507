"""Cue traffic for the delivery scenarios: paced batches that honour 429, periodic single cues."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from bench.procs import Child

TICK_S = 0.02  # 50 requests/s at most per offered stream: batches keep the client cheap
MAX_BATCH = 100  # the gateway's limit of cues per request


@dataclass(frozen=True, slots=True)
class Submitted:
    """A cue the gateway answered 202 (queued): when we sent it and when the answer came."""

    channel: str
    id: str
    sent_at: float  # wall clock, comparable with the local IVS's event times
    accepted_at: float


@dataclass(slots=True)
class OfferLog:
    """What one offered stream did: cues accepted, requests refused and how long we waited."""

    accepted: list[Submitted] = field(default_factory=list)
    offered: int = 0  # distinct cues we tried to submit (a retried batch counts once)
    requests: int = 0
    refusals: Counter[str] = field(default_factory=Counter)  # error code -> requests
    waited_s: float = 0.0  # time spent honouring retry_after_ms
    started: float = 0.0  # wall clock
    ended: float = 0.0

    def as_json(self) -> dict[str, Any]:
        """The figures of the log (not the cues)."""
        span = max(self.ended - self.started, 1e-9)
        return {
            "offered_cues": self.offered,
            "offered_cues_per_s": round(self.offered / span, 2),
            "accepted_cues": len(self.accepted),
            "requests": self.requests,
            "refused_requests": dict(self.refusals),
            "refused_share": round(sum(self.refusals.values()) / self.requests, 3)
            if self.requests
            else None,
            "retry_after_waited_s": round(self.waited_s, 3),
        }


async def post_cues(
    http: aiohttp.ClientSession, gateway: Child, cues: list[dict[str, Any]]
) -> tuple[int, Any]:
    """POST one cue (a list of one) or a batch; return the status and the decoded body."""
    document: Any = cues[0] if len(cues) == 1 else {"cues": cues}
    async with http.post(
        f"{gateway.url}/v1/cues",
        data=orjson.dumps(document),
        headers={"Content-Type": "application/json", **gateway.headers},
    ) as response:
        return response.status, orjson.loads(await response.read())


def _retry_after_s(body: Any) -> float:
    try:
        return max(0.001, float(body["error"]["retry_after_ms"]) / 1000)
    except (KeyError, TypeError, ValueError):
        return 0.1


async def submit(
    http: aiohttp.ClientSession,
    gateway: Child,
    cues: list[dict[str, Any]],
    log: OfferLog,
    *,
    deadline: float,
) -> bool:
    """Submit `cues` all or none, honouring 429 until `deadline` (monotonic); True if accepted."""
    while True:
        sent_at = time.time()
        status, body = await post_cues(http, gateway, cues)
        log.requests += 1
        if status == 202:
            accepted_at = time.time()
            for answer in body["cues"]:
                if answer["status"] == "queued":
                    log.accepted.append(
                        Submitted(answer["channel"], answer["id"], sent_at, accepted_at)
                    )
            return True
        code = str(body.get("error", {}).get("code", status)) if isinstance(body, dict) else ""
        log.refusals[code or str(status)] += 1
        if status != 429:
            return False
        wait = _retry_after_s(body)
        if time.monotonic() + wait >= deadline:
            return False
        log.waited_s += wait
        await asyncio.sleep(wait)


def round_robin(gateway: Child | Sequence[Child]) -> list[Child]:
    """The gateways requests go to in turn: one, or the replicas behind a load balancer."""
    return [gateway] if isinstance(gateway, Child) else list(gateway)


async def offer_paced(
    http: aiohttp.ClientSession,
    gateway: Child | Sequence[Child],
    make_cue: Callable[[int], dict[str, Any]],
    *,
    rate: float,
    duration: float,
    log: OfferLog,
) -> None:
    """Offer `rate` cues/s for `duration` s in batches, one request at a time, honouring 429;
    with several gateways, each batch goes to the next one in turn (its retries stay there)."""
    targets = round_robin(gateway)
    requests = 0
    loop = asyncio.get_running_loop()
    start = loop.time()
    end = start + duration
    log.started = time.time()
    owed = 0.0
    serial = 0
    tick = start
    while loop.time() < end:
        owed += rate * TICK_S
        count = min(MAX_BATCH, int(owed))
        if count:
            owed -= count
            batch = [make_cue(serial + n) for n in range(count)]
            serial += count
            log.offered += count
            await submit(http, targets[requests % len(targets)], batch, log, deadline=end)
            requests += 1
            # Time spent waiting out a 429 is not owed back: a client that honours
            # Retry-After offers less, which is the point of it.
            tick = max(tick, loop.time() - TICK_S)
        tick += TICK_S
        await asyncio.sleep(max(0.0, tick - loop.time()))
    log.ended = time.time()


async def offer_periodic(
    http: aiohttp.ClientSession,
    gateway: Child,
    make_cue: Callable[[int], dict[str, Any]],
    *,
    period: float,
    phase: float,
    duration: float,
    log: OfferLog,
) -> None:
    """Post one cue every `period` s, starting `phase` s in, for `duration` s."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    end = start + duration
    log.started = time.time()
    serial = 0
    at = start + phase
    while at < end:
        await asyncio.sleep(max(0.0, at - loop.time()))
        log.offered += 1
        await submit(http, gateway, [make_cue(serial)], log, deadline=end)
        serial += 1
        at += period
    log.ended = time.time()
