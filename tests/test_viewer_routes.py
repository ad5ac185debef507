"""The gateway's demo routes: pages, built assets, the channel's playback URL, accept times."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from browser.harness import DemoGateway, demo_gateway

from metadata_gateway.core.cues import Cue, Priority
from metadata_gateway.core.pending import Pending
from metadata_gateway.web import routes
from metadata_gateway.web.accept_times import MAX_REMEMBERED, AcceptTimes


@pytest.fixture
async def gw() -> AsyncIterator[DemoGateway]:
    """A gateway with the demo pages, on a local IVS without playback (no ffmpeg needed)."""
    async with demo_gateway(playback=False) as running:
        yield running


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A stand-in for `npm run build`'s output."""
    for name in routes.BUILD_FILES:
        (tmp_path / name).write_bytes(b"// " + name.encode())
    monkeypatch.setattr(routes, "BUILD_DIR", tmp_path)
    return tmp_path


async def test_console_is_plain_html_and_js(gw: DemoGateway) -> None:
    """`/console` and its script and style are served without any build step."""
    page = await gw.get("/console")
    assert page.status == 200
    assert page.content_type == "text/html"
    for path, kind in (("/demo/static/console.js", "javascript"), ("/demo/static/demo.css", "css")):
        asset = await gw.get(path)
        assert asset.status == 200
        assert kind in asset.content_type


async def test_viewer_says_how_to_build_it_when_it_is_not_built(
    gw: DemoGateway, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without the npm build, `/viewer` answers 503 with the commands that build it."""
    monkeypatch.setattr(routes, "BUILD_DIR", tmp_path)
    async with gw.http.get(f"{gw.url}/viewer?channel=demo") as response:
        assert response.status == 503
        assert "npm ci &amp;&amp; npm run build" in await response.text()


async def test_viewer_page_and_built_files_are_served(gw: DemoGateway, built: Path) -> None:
    """Once built, `/viewer` loads the bundle; only the built files are served, wasm as wasm."""
    async with gw.http.get(f"{gw.url}/viewer?channel=demo") as response:
        assert response.status == 200
        assert '<script type="module" src="/demo/build/viewer.js">' in await response.text()
    wasm = await gw.get("/demo/build/amazon-ivs-wasmworker.min.wasm")
    assert (wasm.status, wasm.content_type) == (200, "application/wasm")
    for name in ("package.json", "..%2Fviewer.html", "other.js"):
        assert (await gw.get(f"/demo/build/{name}")).status == 404


async def test_playback_info_comes_from_the_ivs(gw: DemoGateway) -> None:
    """The viewer learns a channel's ARN and playbackUrl (as GetChannel returns it) by alias."""
    for name in ("demo", gw.arn):
        async with gw.http.get(f"{gw.url}/demo/api/playback", params={"channel": name}) as r:
            assert r.status == 200
            body = await r.json()
        assert body == {
            "channel": gw.arn,
            "alias": "demo",
            "name": "demo",
            "playbackUrl": gw.ivs.state.get_channel(gw.arn)["channel"]["playbackUrl"],
        }
    async with gw.http.get(f"{gw.url}/demo/api/playback?channel=nope") as response:
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "unknown_channel"


async def test_accept_times_of_sent_cues_are_available_to_the_viewer(gw: DemoGateway) -> None:
    """After a cue is sent, the viewer can ask when the gateway accepted it (Unix ms)."""
    before = time.time() * 1000
    status, _ = await gw.post(
        {"channel": "demo", "type": "quiz", "id": "q1", "data": {"question_id": "q1"}}
    )
    after = time.time() * 1000
    assert status == 202
    await gw.wait_for(lambda: len(gw.ivs.state.events_of(gw.arn)) == 1)
    query = {"channel": gw.arn, "id": "q1"}
    async with gw.http.get(
        f"{gw.url}/demo/api/accepted", params=[*query.items(), ("id", "zz")]
    ) as r:
        accepted = (await r.json())["accepted"]
    assert list(accepted) == ["q1"]
    assert before - 1 <= accepted["q1"] <= after + 1


def _pending(cue_id: str, accepted_at: float) -> Pending:
    cue = Cue(
        id=cue_id,
        channel="arn:aws:ivs:us-west-2:123456789012:channel/a",
        type="custom",
        item=b"{}",
        key=None,
        ttl=30.0,
        priority=Priority.NORMAL,
        client_id=True,
    )
    return Pending(
        cue=cue, accepted_at=accepted_at, expires_at=accepted_at + 30, release_at=accepted_at
    )


def test_accept_times_convert_the_gateway_clock_to_wall_time_and_stay_bounded() -> None:
    """Accept times are wall-clock ms; a repeat keeps the first; the oldest are forgotten first."""
    times = AcceptTimes(wall_clock=lambda: 1_000_000.0)
    channel = "arn:aws:ivs:us-west-2:123456789012:channel/a"
    times.cues_sent(channel, [_pending("a", 40.0)], now=50.0)
    times.cues_sent(channel, [_pending("a", 49.0)], now=50.0)
    assert times.lookup(channel, ["a", "b"]) == {"a": 999_990_000}
    assert times.lookup("arn:aws:ivs:us-west-2:123456789012:channel/other", ["a"]) == {}
    times.cues_sent(channel, [_pending(str(n), 50.0) for n in range(MAX_REMEMBERED)], now=50.0)
    assert len(times) == MAX_REMEMBERED
    assert times.lookup(channel, ["a"]) == {}
