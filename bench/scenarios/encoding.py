"""Scenario 8: json and deflate side by side on a show's corpus, and large cues in parts.

Two channels offered 10x what fits of the same realistic cues (captions, quiz questions, poll
tallies): cues per call, delivered cues/s, payload fill. Then 4 KB and 16 KB cues of multi-byte
text on an idle channel and on a busy one: accept-to-IVS latency of the last part. And the Node
decoder's CPU per payload, on the payloads IVS recorded.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson

from bench import observe
from bench.analysis import percentile, rounded
from bench.context import Bench
from bench.corpus import corpus_cues, large_text
from bench.delivery import calls_in_window, latencies
from bench.load import OfferLog, offer_paced
from bench.procs import Child
from bench.scenarios.saturated import CHANNEL_RATE, steady_figures

ROOT = Path(__file__).resolve().parents[2]
JSON_CUES_PER_CALL = 6  # what plain JSON fits of this corpus: the offered load is 10x that
LARGE_SIZES = (4_096, 16_384)
LARGE_SAMPLES = 5  # per size and channel state
DRAIN_GRACE_S = 10.0
NODE_DECODE = """
import { CueDecoder } from './cue_decoder.js';
import { readFileSync } from 'node:fs';
const texts = JSON.parse(readFileSync(0, 'utf8'));
const rounds = 20;
const start = process.cpuUsage();
let cues = 0;
for (let r = 0; r < rounds; r++) {
  const decoder = new CueDecoder();
  for (const text of texts) cues += decoder.decode(text).length;
}
const used = process.cpuUsage(start);
process.stdout.write(JSON.stringify({
  us_per_payload: (used.user + used.system) / (rounds * texts.length), cues: cues / rounds,
}));
"""


def _config(log_dir: Path, deflate: list[str]) -> Path:
    path = log_dir / "encoding.toml"
    tables = "".join(f'[channel_options."{a}"]\npayload_encoding = "deflate"\n' for a in deflate)
    path.write_text(tables)
    return path


async def _offer(bench: Bench, gateway: Child, arn: str, duration: float) -> OfferLog:
    source = corpus_cues(arn)
    log = OfferLog()
    await offer_paced(
        bench.http,
        [gateway],
        lambda n: {**next(source), "id": f"e{n}"},
        rate=bench.profile.overload * CHANNEL_RATE * JSON_CUES_PER_CALL,
        duration=duration,
        log=log,
    )
    return log


async def _large_latency(
    bench: Bench, ivs: Child, gateway: Child, arn: str, size: int, serial: int
) -> float | None:
    """Post one large cue; seconds from its 202 to IVS accepting its last part."""
    cue_id = f"large-{size}-{serial}"
    body = {
        "channel": arn,
        "type": "custom",
        "id": cue_id,
        "priority": "high",  # on a busy channel: ahead of the backlog, behind no other cue
        # The envelope, id and keys included, stays within max_cue_bytes (16384 by default).
        "data": {"text": large_text(size - 200, seed=serial)},
    }
    deadline = time.monotonic() + 30
    while True:
        async with bench.http.post(
            f"{gateway.url}/v1/cues", data=orjson.dumps(body), headers=gateway.headers
        ) as response:
            accepted = time.time()
            if response.status == 202:
                break
            wait = float(response.headers.get("Retry-After", "0.2"))
        if response.status != 429 or time.monotonic() + wait > deadline:
            return None
        await asyncio.sleep(wait)  # the gateway's Retry-After, as a client must
    while time.monotonic() < deadline:
        for event in await observe.events(bench.http, ivs.url):
            if event.channel == arn and cue_id in event.ids:
                return event.time - accepted
        await asyncio.sleep(0.2)  # polls the local IVS's record, never the gateway
    return None


def _node_decoder_cpu(texts: list[str]) -> dict[str, Any] | None:
    if shutil.which("node") is None or not texts:
        return None
    done = subprocess.run(
        ["node", "--input-type=module", "-e", NODE_DECODE],
        input=json.dumps(texts),
        cwd=ROOT / "clients" / "js",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        return {"error": done.stderr[-500:]}
    figures: dict[str, Any] = json.loads(done.stdout)
    figures["us_per_payload"] = round(figures["us_per_payload"], 1)
    return figures


async def run(bench: Bench) -> dict[str, Any]:
    """json vs deflate on one local IVS, one gateway, four channels."""
    profile = bench.profile
    async with bench.local_ivs("encoding-ivs") as ivs:
        json_arn, deflate_arn, busy_arn, idle_arn = await bench.channels(ivs, 4, "encoding")
        config = _config(bench.log_dir, [deflate_arn, busy_arn, idle_arn])
        flags = ("--config", str(config), "--channel-max-cues", "600", "--drain-timeout", "1")
        async with bench.gateway(ivs, "encoding-gateway", flags=flags) as gateway:
            idle: dict[int, list[float]] = {size: [] for size in LARGE_SIZES}
            for size in LARGE_SIZES:
                for n in range(LARGE_SAMPLES):
                    latency = await _large_latency(bench, ivs, gateway, idle_arn, size, n)
                    if latency is not None:
                        idle[size].append(latency)
            busy: dict[int, list[float]] = {size: [] for size in LARGE_SIZES}

            async def large_on_busy() -> None:
                # A channel of its own, loaded as the others: the large cues' calls would
                # otherwise be missing from the deflate channel's steady figures.
                await asyncio.sleep(profile.saturated_warmup_s)
                for n in range(LARGE_SAMPLES):
                    for size in LARGE_SIZES:
                        latency = await _large_latency(bench, ivs, gateway, busy_arn, size, 100 + n)
                        if latency is not None:
                            busy[size].append(latency)

            logs = await asyncio.gather(
                _offer(bench, gateway, json_arn, profile.saturated_s),
                _offer(bench, gateway, deflate_arn, profile.saturated_s),
                _offer(bench, gateway, busy_arn, profile.saturated_s),
                large_on_busy(),
            )
            await observe.wait_drained(bench.http, gateway, within=profile.queue_s * 2 + 10)
        events = await observe.events(bench.http, ivs.url)
        async with bench.http.get(f"{ivs.url}/_local/metadata") as response:
            raw = orjson.loads(await response.read())["events"]
    by_encoding: dict[str, Any] = {}
    for name, arn, log in (("json", json_arn, logs[0]), ("deflate", deflate_arn, logs[1])):
        mine = [e for e in events if e.channel == arn]
        small = [e for e in mine if e.ids and not any(i.startswith("large") for i in e.ids)]
        steady = steady_figures(small, log.started + profile.saturated_warmup_s, log.ended)
        by_encoding[name] = {
            **steady,
            "calls": len(mine),
            "max_calls_in_any_1s_window": calls_in_window(mine),
            "max_payload_bytes": max((e.size for e in mine), default=None),
            "latency": latencies(log.accepted, mine),
            **log.as_json(),
        }
    texts = [e["metadata"] for e in raw if e["channelArn"] == deflate_arn]
    plain = [e["metadata"] for e in raw if e["channelArn"] == json_arn]
    json_cpc = by_encoding["json"].get("cues_per_call")
    deflate_cpc = by_encoding["deflate"].get("cues_per_call")

    def ms(values: list[float]) -> dict[str, Any]:
        p50, p99 = percentile(values, 50), percentile(values, 99)
        return {
            "samples": len(values),
            "p50_ms": None if p50 is None else round(p50 * 1000, 1),
            "p99_ms": None if p99 is None else round(p99 * 1000, 1),
        }

    return {
        "by_encoding": by_encoding,
        "deflate_cues_per_call_ratio": rounded(deflate_cpc and json_cpc and deflate_cpc / json_cpc),
        "large_cue_latency": {
            f"{size}": {"idle": ms(idle[size]), "busy": ms(busy[size])} for size in LARGE_SIZES
        },
        "node_decoder": {"deflate": _node_decoder_cpu(texts), "json": _node_decoder_cpu(plain)},
    }
