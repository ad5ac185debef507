"""What the benchmark reads back: the local IVS's record of accepted calls, and gateway metrics."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
import orjson

from bench.procs import Child
from metadata_gateway.client.cue_decoder import CueDecoder, DecodedCue

CREATE_CONCURRENCY = 32
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Event:
    """One PutMetadata the local IVS accepted: wall-clock arrival, channel, cue ids, bytes."""

    time: float
    channel: str
    ids: tuple[str, ...]
    size: int


async def create_channels(
    http: aiohttp.ClientSession, ivs_url: str, count: int, *, prefix: str = "bench"
) -> list[str]:
    """Create `count` channels and start a simulated stream on each; return their ARNs."""
    # Plain POSTs of the wire API rather than botocore: the local IVS checks no signature, and
    # 100k channels through botocore's ~1 ms of signing each would take minutes.
    limit = asyncio.Semaphore(CREATE_CONCURRENCY)

    async def make(n: int) -> str:
        async with limit:
            body = orjson.dumps({"name": f"{prefix}-{n}"})
            async with http.post(f"{ivs_url}/CreateChannel", data=body) as response:
                response.raise_for_status()
                arn: str = orjson.loads(await response.read())["channel"]["arn"]
            body = orjson.dumps({"channelArn": arn})
            async with http.post(f"{ivs_url}/_local/streams", data=body) as response:
                response.raise_for_status()
            return arn

    return list(await asyncio.gather(*(make(n) for n in range(count))))


async def events(http: aiohttp.ClientSession, ivs_url: str) -> list[Event]:
    """Every payload the local IVS accepted, decoded to the cue ids it carried."""
    async with http.get(f"{ivs_url}/_local/metadata") as response:
        response.raise_for_status()
        raw = orjson.loads(await response.read())["events"]
    decoded = []
    # Compressed payloads and parts go through the client's decoder, one per channel: an event
    # lists the cues a payload completes (the last part of a large cue carries its id).
    decoders: dict[str, CueDecoder] = {}
    for event in raw:
        metadata: str = event["metadata"]
        if metadata.startswith(("~z", "~p")):
            decoder = decoders.setdefault(event["channelArn"], CueDecoder())
            ids = tuple(c.id for c in decoder.decode(metadata) if isinstance(c, DecodedCue))
        else:
            ids = tuple(str(item["i"]) for item in orjson.loads(metadata)["c"])
        decoded.append(
            Event(
                time=float(event["time"]),
                channel=event["channelArn"],
                ids=ids,
                size=len(metadata.encode()),
            )
        )
    return decoded


async def put_metadata_stats(http: aiohttp.ClientSession, ivs_url: str) -> dict[str, int]:
    """How the local IVS answered PutMetadata: `accepted` and a count per error name."""
    async with http.get(f"{ivs_url}/_local/stats") as response:
        response.raise_for_status()
        stats: dict[str, dict[str, int]] = orjson.loads(await response.read())
    return dict(stats.get("PutMetadata", {}))


async def metrics(http: aiohttp.ClientSession, gateway: Child) -> dict[str, float]:
    """The gateway's Prometheus samples, keyed by `name{labels}` as the text shows them."""
    async with http.get(f"{gateway.url}/metrics", headers=gateway.headers) as response:
        response.raise_for_status()
        text = await response.text()
    return {name: float(value) for name, value in _SAMPLE.findall(text)}


async def metrics_sum(http: aiohttp.ClientSession, gateways: Sequence[Child]) -> dict[str, float]:
    """The samples of several replicas added up, as Prometheus would sum them."""
    total: dict[str, float] = {}
    for samples in await asyncio.gather(*(metrics(http, g) for g in gateways)):
        for key, value in samples.items():
            total[key] = total.get(key, 0.0) + value
    return total


def labelled(samples: dict[str, float], name: str) -> dict[str, float]:
    """The samples of one metric by the value of its single label, e.g. dropped by reason."""
    found: dict[str, float] = {}
    for key, value in samples.items():
        if key.startswith(name + "{"):
            found[key.split('="', 1)[1].rsplit('"', 1)[0]] = value
    return found


CALL_SECONDS = "metadata_gateway_put_metadata_duration_seconds"


def mean_call_ms(samples: dict[str, float]) -> float | None:
    """The gateway's mean PutMetadata duration (start to answer) in ms, from its histogram."""
    count = samples.get(f"{CALL_SECONDS}_count", 0.0)
    return round(samples[f"{CALL_SECONDS}_sum"] / count * 1000, 3) if count else None


async def wait_drained(
    http: aiohttp.ClientSession, gateway: Child, *, within: float, every: float = 0.1
) -> bool:
    """Wait until the gateway holds no cue (queued or in flight); False if `within` s passed."""
    deadline = time.monotonic() + within
    while True:
        samples = await metrics(http, gateway)
        if samples.get("metadata_gateway_queued_cues", 1.0) == 0:
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(every)


def ids_of(events: Sequence[Event]) -> list[str]:
    """Every cue id the events carried, in arrival order."""
    return [cue_id for event in events for cue_id in event.ids]
