"""Compressed payloads and cues in parts end to end: HTTP in, the local IVS recording what
viewers receive, both decoders reading it back."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import orjson
import pytest
from gateway_harness import max_calls_in_window, new_channel, running_gateway

from bench.corpus import corpus_cues, large_text
from metadata_gateway.client import CueDecoder, DecodedCue
from metadata_gateway.core.envelope import encode_payload
from metadata_gateway.local_ivs import LocalIvs

ROOT = Path(__file__).resolve().parent.parent


def payloads(ivs: LocalIvs, arn: str) -> list[str]:
    return [e.metadata for e in ivs.state.events if e.channel_arn == arn]


def decode_all(texts: list[str], decoder: CueDecoder | None = None) -> list[DecodedCue]:
    decoder = decoder or CueDecoder()
    return [c for t in texts for c in decoder.decode(t) if isinstance(c, DecodedCue)]


def js_decode(texts: list[str]) -> list[dict[str, object]]:
    """The cues clients/js's CueDecoder hands over for these payloads, in order."""
    script = (
        "import { CueDecoder } from './cue_decoder.js';"
        "import { readFileSync } from 'node:fs';"
        "const d = new CueDecoder({ onDamage: (x) => { throw new Error(x.reason); } });"
        "const texts = JSON.parse(readFileSync(0, 'utf8'));"
        "process.stdout.write(JSON.stringify(texts.flatMap((t) => d.decode(t))));"
    )
    done = subprocess.run(
        ["node", "--input-type=module", "-e", script],
        input=json.dumps(texts),
        cwd=ROOT / "clients" / "js",
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    decoded: list[dict[str, object]] = json.loads(done.stdout)
    return decoded


async def test_deflate_channel_packs_compressed_payloads_within_1024_bytes(
    local_ivs: LocalIvs,
) -> None:
    """A deflate channel's payloads are <= 1024 bytes, >= 2x fuller, decoded to every cue."""
    json_arn, deflate_arn = new_channel(local_ivs, "plain"), new_channel(local_ivs, "packed")
    options = {deflate_arn: {"payload_encoding": "deflate"}}
    async with running_gateway(local_ivs, channel_options=options) as gw:
        sent: dict[str, list[dict[str, object]]] = {}
        for arn in (json_arn, deflate_arn):
            cues = [
                {**c, "id": f"k{n}"} for n, c in zip(range(100), corpus_cues(arn), strict=False)
            ]
            status, _, _ = await gw.post({"cues": cues})
            assert status == 202
            sent[arn] = cues
        await gw.wait_for(
            lambda: all(len(decode_all(payloads(local_ivs, a))) == 100 for a in sent), within=20
        )
        calls = {}
        for arn, cues in sent.items():
            texts = payloads(local_ivs, arn)
            assert all(len(t.encode()) <= 1024 for t in texts)
            got = decode_all(texts)
            assert [(c.id, c.data) for c in got] == [(c["id"], c["data"]) for c in cues]
            calls[arn] = len(texts)
            events = [e.time for e in local_ivs.state.events if e.channel_arn == arn]
            assert max_calls_in_window(events) <= 5
        assert all(t.startswith("~z") for t in payloads(local_ivs, deflate_arn))
        assert calls[json_arn] >= 2 * calls[deflate_arn]


async def test_json_channel_payloads_are_byte_identical_to_the_plain_envelope(
    local_ivs: LocalIvs,
) -> None:
    """With payload_encoding json, each payload is exactly the envelope of its cues."""
    arn = new_channel(local_ivs, "plain-bytes")
    async with running_gateway(local_ivs) as gw:
        cues = [
            {"channel": arn, "type": "custom", "id": f"j{n}", "data": {"n": n}} for n in range(40)
        ]
        assert (await gw.post({"cues": cues}))[0] == 202
        await gw.wait_for(lambda: len(decode_all(payloads(local_ivs, arn))) == 40)
        items = [orjson.dumps({"i": c["id"], "t": "custom", "d": c["data"]}) for c in cues]
        joined = "".join(payloads(local_ivs, arn))
        assert joined.startswith('{"v":1,"c":[')
        rebuilt, start = [], 0
        for text in payloads(local_ivs, arn):
            count = len(orjson.loads(text)["c"])
            rebuilt.append(encode_payload(items[start : start + count]).decode())
            start += count
        assert payloads(local_ivs, arn) == rebuilt


@pytest.mark.parametrize("encoding", ["json", "deflate"])
async def test_16k_multibyte_cue_arrives_whole_through_both_decoders(
    local_ivs: LocalIvs, encoding: str
) -> None:
    """A 16 KB cue of multi-byte text, between small cues, arrives once and identical; a 70 KB
    cue is refused 413; a decoder joining mid-cue hands over no part of it."""
    arn = new_channel(local_ivs, f"large-{encoding}")
    text = large_text(16_000)
    async with running_gateway(local_ivs, payload_encoding=encoding) as gw:
        status, body, _ = await gw.post(
            {"channel": arn, "type": "custom", "data": {"text": large_text(70_000)}}
        )
        assert (status, body["error"]["code"], body["error"]["limit"]) == (
            413,
            "cue_too_large",
            16_384,
        )
        assert body["error"]["size"] > 70_000
        cues = [
            {"channel": arn, "type": "custom", "id": "before", "data": {"n": 1}},
            {"channel": arn, "type": "custom", "id": "big", "data": {"text": text}},
            {"channel": arn, "type": "custom", "id": "after", "data": {"n": 2}},
        ]
        assert (await gw.post({"cues": cues}))[0] == 202
        await gw.wait_for(lambda: len(decode_all(payloads(local_ivs, arn))) == 3, within=20)
    texts = payloads(local_ivs, arn)
    assert all(len(t.encode()) <= 1024 for t in texts)
    got = decode_all(texts)
    assert [(c.id, c.data) for c in got] == [(c["id"], c["data"]) for c in cues]
    parts = [n for n, t in enumerate(texts) if t.startswith("~p")]
    assert parts == list(range(parts[0], parts[0] + len(parts)))  # consecutive calls
    late = decode_all(texts[parts[0] + 1 :])
    assert [c.id for c in late] == ["after"]
    if shutil.which("node") is not None:
        js = js_decode(texts)
        assert [(c["id"], c["data"]) for c in js] == [(c["id"], c["data"]) for c in cues]
