"""Scenario 5: cues/s the gateway takes in over HTTP and WebSocket, against bare aiohttp."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import orjson

from bench import procs
from bench.context import Bench
from bench.cues import cue
from bench.procs import Child, Usage
from bench.rawload import LoadResult, http_load, http_request, ws_frame, ws_load

CHANNELS = 200  # cues spread so that no channel queue fills during a measurement
HTTP_CONNECTIONS = 16
WS_CONNECTIONS = 4
WS_DEPTH = 64  # frames each connection keeps unanswered
CUE_SIZE = 100
DISTINCT_BODIES = 1_000
# Room for everything a measurement submits: ingress, not back-pressure, is measured here.
GATEWAY_FLAGS = ("--total-max-cues", "2000000", "--drain-timeout", "0.5")
GATEWAY_ENV = {"MG_WS_MAX_IN_FLIGHT": "2000000"}


def _bodies(arns: list[str]) -> list[bytes]:
    return [
        orjson.dumps(cue(arns[n % len(arns)], CUE_SIZE, serial=n)) for n in range(DISTINCT_BODIES)
    ]


def _frames(arns: list[str]) -> list[bytes]:
    frames = []
    for n in range(DISTINCT_BODIES):
        body = {"op": "cue", "ref": n, **cue(arns[n % len(arns)], CUE_SIZE, serial=n)}
        frames.append(ws_frame(orjson.dumps(body)))
    return frames


def _batch_frames(arns: list[str], size: int) -> list[bytes]:
    frames = []
    for n in range(DISTINCT_BODIES // size):
        cues = [cue(arns[(n * size + k) % len(arns)], CUE_SIZE, serial=n) for k in range(size)]
        frames.append(ws_frame(orjson.dumps({"op": "cues", "ref": n, "cues": cues})))
    return frames


@dataclass(frozen=True, slots=True)
class Measured:
    """Answers per second in the window, and the server's CPU per answer in the same window."""

    per_s: float
    cpu_us_per_answer: float | None
    cpu_share: float  # of one core
    client_cpu_share: float  # the load generator's (this process), to show it was not the limit
    load: LoadResult

    def as_json(self) -> dict[str, Any]:
        """The figures and the raw counts."""
        return {
            "per_s": self.per_s,
            "cpu_us_per_answer": self.cpu_us_per_answer,
            "cpu_share": self.cpu_share,
            "client_cpu_share": self.client_cpu_share,
            **self.load.as_json(),
        }


async def _measure(bench: Bench, server: Child, load: Awaitable[LoadResult], kind: str) -> Measured:
    # The server's CPU is read at the edges of the counted window, so that CPU per answer
    # holds even when other processes slow the machine down: throughput alone would not.
    async def sample() -> tuple[Usage, Usage, float]:
        await asyncio.sleep(bench.profile.ingress_warmup_s)
        first, client = server.usage(), time.process_time()
        await asyncio.sleep(bench.profile.ingress_s)
        return first, server.usage(), time.process_time() - client

    result, (first, last, client_cpu) = await asyncio.gather(load, sample())
    answers = result.answers[kind]
    cpu = last.cpu_s - first.cpu_s
    wall = last.at - first.at
    return Measured(
        per_s=round(result.rate(kind), 1),
        cpu_us_per_answer=round(cpu / answers * 1e6, 1) if answers else None,
        cpu_share=round(cpu / wall, 3),
        client_cpu_share=round(client_cpu / wall, 3),
        load=result,
    )


async def _http(bench: Bench, server: Child, bodies: list[bytes]) -> Measured:
    profile = bench.profile
    requests = [http_request(server.url, "/v1/cues", body, server.headers) for body in bodies]
    load = http_load(
        server.url,
        requests,
        connections=HTTP_CONNECTIONS,
        warmup=profile.ingress_warmup_s,
        duration=profile.ingress_s,
    )
    return await _measure(bench, server, load, "202")


async def _ws(bench: Bench, server: Child, frames: list[bytes]) -> Measured:
    profile = bench.profile
    load = ws_load(
        server.url,
        "/v1/ws",
        frames,
        headers=server.headers,
        connections=WS_CONNECTIONS,
        depth=WS_DEPTH,
        warmup=profile.ingress_warmup_s,
        duration=profile.ingress_s,
    )
    return await _measure(bench, server, load, "ack")


async def run(bench: Bench) -> dict[str, Any]:
    """Alternate bare and gateway measurements for each round; report medians and ratios."""
    rounds: list[dict[str, Any]] = []
    async with bench.local_ivs("ingress-ivs") as ivs:
        arns = await bench.channels(ivs, CHANNELS, "ingress")
        bodies, frames = _bodies(arns), _frames(arns)
        for number in range(bench.profile.ingress_rounds):
            figures: dict[str, Any] = {}
            async with procs.bare_server(log_dir=bench.log_dir, name=f"bare-{number}") as bare:
                bare_http = await _http(bench, bare, bodies)
                bare_ws = await _ws(bench, bare, frames)
            name = f"ingress-gateway-http-{number}"
            async with bench.gateway(ivs, name, flags=GATEWAY_FLAGS, env=GATEWAY_ENV) as gateway:
                gateway_http = await _http(bench, gateway, bodies)
            name = f"ingress-gateway-ws-{number}"
            async with bench.gateway(ivs, name, flags=GATEWAY_FLAGS, env=GATEWAY_ENV) as gateway:
                gateway_ws = await _ws(bench, gateway, frames)
            batch = bench.profile.ingress_ws_batch
            if batch:
                # Not in the ratio: what a client gets by sending `cues` frames instead.
                name = f"ingress-gateway-ws-batch-{number}"
                async with bench.gateway(
                    ivs, name, flags=GATEWAY_FLAGS, env=GATEWAY_ENV
                ) as gateway:
                    batched = await _ws(bench, gateway, _batch_frames(arns, batch))
                figures["gateway_ws_batched_cues_per_s"] = round(batched.per_s * batch, 1)
                figures["gateway_ws_batched_cpu_us_per_cue"] = (
                    round(batched.cpu_us_per_answer / batch, 1)
                    if batched.cpu_us_per_answer
                    else None
                )
            measured = {
                "bare_http": bare_http,
                "gateway_http": gateway_http,
                "bare_ws": bare_ws,
                "gateway_ws": gateway_ws,
            }
            for key, value in measured.items():
                figures[f"{key}_per_s"] = value.per_s
                figures[f"{key}_cpu_us"] = value.cpu_us_per_answer
            figures["detail"] = {key: value.as_json() for key, value in measured.items()}
            rounds.append(figures)

    def median(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return round(float(statistics.median(present)), 3) if present else None

    def column(key: str) -> float | None:
        return median([r.get(key) for r in rounds])

    def paired(part: str, whole: str) -> float | None:
        # Each round's own ratio, then the median: the machine's load drifts between rounds
        # more than between the two halves of one.
        return median([_ratio(r.get(part), r.get(whole)) for r in rounds])

    return {
        "cue_bytes": CUE_SIZE,
        "http_connections": HTTP_CONNECTIONS,
        "ws_connections": WS_CONNECTIONS,
        "ws_frames_in_flight_per_connection": WS_DEPTH,
        "bare_http_per_s": column("bare_http_per_s"),
        "gateway_http_per_s": column("gateway_http_per_s"),
        "bare_ws_per_s": column("bare_ws_per_s"),
        "gateway_ws_per_s": column("gateway_ws_per_s"),
        "http_ingress_ratio": paired("gateway_http_per_s", "bare_http_per_s"),
        "ws_ingress_ratio": paired("gateway_ws_per_s", "bare_ws_per_s"),
        # CPU microseconds each answer cost the server: the same comparison, immune to how
        # busy the rest of the machine was (bare / gateway, so higher is better, like above).
        "bare_http_cpu_us": column("bare_http_cpu_us"),
        "gateway_http_cpu_us": column("gateway_http_cpu_us"),
        "bare_ws_cpu_us": column("bare_ws_cpu_us"),
        "gateway_ws_cpu_us": column("gateway_ws_cpu_us"),
        "http_cpu_ratio": paired("bare_http_cpu_us", "gateway_http_cpu_us"),
        "ws_cpu_ratio": paired("bare_ws_cpu_us", "gateway_ws_cpu_us"),
        "ws_batch_cues_per_frame": bench.profile.ingress_ws_batch or None,
        "gateway_ws_batched_cues_per_s": column("gateway_ws_batched_cues_per_s"),
        "gateway_ws_batched_cpu_us_per_cue": column("gateway_ws_batched_cpu_us_per_cue"),
        "rounds": rounds,
    }


def _ratio(part: float | None, whole: float | None) -> float | None:
    return part / whole if part and whole else None
