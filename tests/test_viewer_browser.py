"""The whole loop in Debian's Chromium: gateway → local IVS → HLS → amazon-ivs-player → page."""

from __future__ import annotations

import asyncio
import os
import re
import time
from pathlib import Path
from typing import Any

import orjson
from browser.harness import demo_gateway, require_browser, run_script

from bench.corpus import large_text
from metadata_gateway.ingress.auth import TokenSpec, hash_token
from metadata_gateway.running.appkeys import METRICS

# Set to keep the viewer's screenshot (the README's docs/viewer.png is taken this way).
SCREENSHOT_ENV = "MG_VIEWER_SCREENSHOT"

# Three posts, a little apart, so the cues span several PutMetadata calls and segments.
ROUNDS: list[list[dict[str, Any]]] = [
    [
        {
            "channel": "demo",
            "type": "quiz",
            "id": "q1",
            "data": {"question_id": "q1", "text": "2 + 2 = ?", "options": ["3", "4", "5"]},
        },
        {
            "channel": "demo",
            "type": "poll",
            "id": "p1",
            "data": {"poll_id": "p1", "yes": 12, "no": 5},
        },
        {"channel": "demo", "type": "caption", "id": "c1", "data": {"text": "Welcome to the show"}},
    ],
    [
        {"channel": "demo", "type": "raw", "data": "GOAL! 1-0"},
        {
            "channel": "demo",
            "type": "custom",
            "id": "x1",
            "data": {"score": [1, 0], "note": "¿Qué? ñ ü €"},
        },
        # Re-sent every second: the player sees it several times, the page shows it once.
        {
            "channel": "demo",
            "type": "state",
            "id": "s1",
            "key": "quiz:current",
            "data": {"question_id": "q2"},
            "repeat_ms": 1000,
        },
    ],
    [
        {
            "channel": "demo",
            "type": "quiz",
            "id": "q2",
            "data": {"question_id": "q2", "text": "Capital of Peru?", "options": ["Lima", "Cusco"]},
        },
        {
            "channel": "demo",
            "type": "poll",
            "id": "p2",
            "data": {"poll_id": "p1", "yes": 30, "no": 9},
        },
        {"channel": "demo", "type": "caption", "id": "c2", "data": {"text": "Time is up!"}},
    ],
]


def _expected() -> list[dict[str, Any]]:
    decoded = []
    for cue in (cue for round_ in ROUNDS for cue in round_):
        if cue["type"] == "raw":
            decoded.append({"kind": "raw", "text": cue["data"]})
        else:
            decoded.append(
                {"kind": "cue", "id": cue["id"], "type": cue["type"], "data": cue["data"]}
            )
    return decoded


async def test_posted_cues_fire_in_the_ivs_player_and_show_on_the_viewer(tmp_path: Path) -> None:
    """Posted cues fire in amazon-ivs-player and decode to exactly those cues, in order, once."""
    require_browser()
    expected = _expected()
    screenshot = os.environ.get(SCREENSHOT_ENV) or str(tmp_path / "viewer.png")
    async with demo_gateway(playback=True) as gw:
        report = await run_script(
            "viewer.mjs",
            {
                "gateway": gw.url,
                "channel": "demo",
                "rounds": ROUNDS,
                "roundGapMs": 400,
                "expected": len(expected),
                "playingTimeoutMs": 15_000,
                "cuesTimeoutMs": 15_000,
                "settleMs": 2_500,
                "screenshot": screenshot,
            },
            tmp_path,
            within=50,
        )
        accepted = gw.ivs.state.events_of(gw.arn)
    assert report["errors"] == [], report
    assert [answer["status"] for answer in report["answers"]] == [202, 202, 202]
    # What the page decoded is exactly what was posted, in order, none missing, none twice.
    assert report["cues"] == expected
    # The player really fired TEXT_METADATA_CUE events with the payloads IVS accepted...
    texts = [event["text"] for event in report["events"]]
    assert set(texts) <= {event.metadata for event in accepted}
    # ...including the state cue's re-sends, which the decoder dropped by id.
    state_payloads = [t for t in texts if '"i":"s1"' in t]
    assert len(state_payloads) >= 2, texts
    # The page shows every cue, with its delay from the gateway's accept time.
    ids = [cue["id"] for cue in expected if cue["kind"] == "cue"]
    shown = {entry["id"]: entry for entry in report["shown"]}
    assert sorted(shown) == sorted(ids)
    assert all(0 < entry["delayMs"] < 15_000 for entry in shown.values()), shown
    assert report["rawShown"] == ["GOAL! 1-0"]
    assert "Capital of Peru?" in report["panels"]["quiz"]
    assert "30" in report["panels"]["poll"]
    assert report["panels"]["caption"] == "Time is up!"
    assert await asyncio.to_thread(os.path.getsize, screenshot) > 10_000


async def test_console_sends_a_quiz_question_and_shows_its_receipt(tmp_path: Path) -> None:
    """A click on the console's quiz button sends it over /v1/ws; its `sent` receipt appears."""
    require_browser()
    question = f"Console question {time.time_ns()}"
    async with demo_gateway(playback=False) as gw:
        report = await run_script(
            "console.mjs",
            {
                "gateway": gw.url,
                "channel": "demo",
                "question": question,
                "receiptTimeoutMs": 10_000,
            },
            tmp_path,
            within=40,
        )
        payloads = [orjson.loads(event.metadata) for event in gw.ivs.state.events_of(gw.arn)]
    receipt = report["receipt"]
    assert receipt["type"] == "quiz"
    assert receipt["status"] == "sent"
    assert re.fullmatch(r"\d+ ms", receipt["latency"]), receipt
    # It went the way any client's cue goes: through the gateway to IVS.
    sent = [item for payload in payloads for item in payload["c"]]
    assert [(item["i"], item["d"]["text"]) for item in sent] == [(receipt["id"], question)]


async def test_console_on_a_gateway_with_tokens_uses_the_token_it_is_given(tmp_path: Path) -> None:
    """With tokens on, the console is refused until given one; then its WebSocket and API work."""
    require_browser()
    token = "mgw_console-browser-test"
    spec = TokenSpec(name="console", sha256=hash_token(token))
    question = f"Console question with a token {time.time_ns()}"
    async with demo_gateway(playback=False, tokens=(spec,)) as gw:
        report = await run_script(
            "console.mjs",
            {
                "gateway": gw.url,
                "channel": "demo",
                "question": question,
                "token": token,
                "receiptTimeoutMs": 10_000,
            },
            tmp_path,
            within=40,
        )
        payloads = [orjson.loads(event.metadata) for event in gw.ivs.state.events_of(gw.arn)]
        rejected = gw.app[METRICS].render().decode()
    assert report["refusedBeforeToken"] != "connected"
    assert report["receipt"]["status"] == "sent"
    assert report["authState"] == ""
    assert token not in report["url"]
    assert 'metadata_gateway_cues_rejected_total{reason="unauthorized"}' in rejected
    sent = [item for payload in payloads for item in payload["c"]]
    assert [(item["i"], item["d"]["text"]) for item in sent] == [
        (report["receipt"]["id"], question)
    ]


# A deflate channel: small cues compressed, a 4 KB and a 16 KB cue of multi-byte text in parts.
LARGE_ROUNDS: list[list[dict[str, Any]]] = [
    [
        {"channel": "demo", "type": "caption", "id": "d1", "data": {"text": "Before the big one"}},
        {"channel": "demo", "type": "custom", "id": "big4", "data": {"text": large_text(4_000)}},
        {"channel": "demo", "type": "poll", "id": "d2", "data": {"poll_id": "p9", "yes": 4}},
    ],
    [
        {"channel": "demo", "type": "custom", "id": "big16", "data": {"text": large_text(16_000)}},
        {"channel": "demo", "type": "caption", "id": "d3", "data": {"text": "After: ¿Qué? 東京"}},
    ],
]


async def test_deflate_and_large_cues_arrive_whole_through_the_ivs_player(tmp_path: Path) -> None:
    """On a deflate channel, compressed payloads and cues in parts fire in amazon-ivs-player and
    decode to exactly the posted cues, whole, in order, once, with no damage reported."""
    require_browser()
    expected = [
        {"kind": "cue", "id": c["id"], "type": c["type"], "data": c["data"]}
        for round_ in LARGE_ROUNDS
        for c in round_
    ]
    async with demo_gateway(playback=True, payload_encoding="deflate") as gw:
        report = await run_script(
            "viewer.mjs",
            {
                "gateway": gw.url,
                "channel": "demo",
                "rounds": LARGE_ROUNDS,
                "roundGapMs": 400,
                "expected": len(expected),
                "playingTimeoutMs": 15_000,
                "cuesTimeoutMs": 20_000,
                "settleMs": 2_500,
                "screenshot": str(tmp_path / "viewer.png"),
            },
            tmp_path,
            within=60,
        )
        accepted = gw.ivs.state.events_of(gw.arn)
    assert report["errors"] == [], report["errors"]
    assert [answer["status"] for answer in report["answers"]] == [202, 202]
    assert report["cues"] == expected
    texts = [event["text"] for event in report["events"]]
    assert set(texts) <= {event.metadata for event in accepted}
    assert all(len(event.metadata.encode()) <= 1024 for event in accepted)
    assert any(t.startswith("~p") for t in texts)
    assert any(t.startswith("~z") for t in texts)
