"""Authentication and authorisation: tokens, channel scopes and per-client rates."""

from __future__ import annotations

import logging

import aiohttp
import pytest
from gateway_harness import new_channel, running_gateway

from metadata_gateway.ingress.auth import WS_BEARER_PREFIX, WS_PROTOCOL, TokenSpec, hash_token
from metadata_gateway.local_ivs import LocalIvs

QUIZ_TOKEN = "mgw_quiz-secret"
ADMIN_TOKEN = "mgw_admin-secret"


def tokens(arn_pattern: str) -> tuple[TokenSpec, ...]:
    return (
        TokenSpec(name="quiz", sha256=hash_token(QUIZ_TOKEN), channels=("main",), rate=2.0),
        TokenSpec(name="admin", sha256=hash_token(ADMIN_TOKEN), channels=(arn_pattern,)),
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_http_requires_a_valid_token_and_respects_scope_and_rate(local_ivs: LocalIvs) -> None:
    """401 without or with a wrong token, 403 outside scope, 429 past the client's rate."""
    main, other = new_channel(local_ivs, "main"), new_channel(local_ivs, "other")
    pattern = main.rsplit("/", 1)[0] + "/*"
    async with running_gateway(local_ivs, channels={"main": main}, tokens=tokens(pattern)) as gw:
        cue = {"channel": "main", "type": "quiz", "data": {"question_id": 1}}

        async def post(body: object, token: str | None) -> tuple[int, dict[str, object], str]:
            headers = bearer(token) if token else {}
            async with gw.http.post(f"{gw.url}/v1/cues", json=body, headers=headers) as r:
                return r.status, await r.json(), r.headers.get("Retry-After", "")

        status, body, _ = await post(cue, None)
        assert (status, body["error"]["code"]) == (401, "unauthorized")  # type: ignore[index]
        status, body, _ = await post(cue, "mgw_wrong")
        assert (status, body["error"]["code"]) == (401, "unauthorized")  # type: ignore[index]
        status, body, _ = await post({**cue, "channel": other}, QUIZ_TOKEN)
        assert (status, body["error"]["code"]) == (403, "forbidden")  # type: ignore[index]
        status, _, _ = await post({**cue, "channel": other}, ADMIN_TOKEN)
        assert status == 202
        status, _, _ = await post({"cues": [cue] * 100}, QUIZ_TOKEN)  # a full batch fits
        assert status == 202
        status, body, retry_after = await post(cue, QUIZ_TOKEN)
        assert (status, body["error"]["code"]) == (429, "client_rate_limited")  # type: ignore[index]
        assert int(retry_after) >= 1
        status, _, _ = await post(cue, ADMIN_TOKEN)  # one noisy client does not starve another
        assert status == 202
        async with gw.http.get(f"{gw.url}/v1/channels") as response:
            assert response.status == 401
        for open_path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
            async with gw.http.get(f"{gw.url}{open_path}") as response:
                assert response.status == 200, open_path
        text = gw.app_metrics_text()
        assert 'metadata_gateway_cues_rejected_total{reason="client_rate_limited"} 1.0' in text
        assert 'metadata_gateway_cues_rejected_total{reason="forbidden"} 1.0' in text


async def test_websocket_checks_the_token_at_upgrade_and_scope_per_frame(
    local_ivs: LocalIvs,
) -> None:
    """The upgrade needs the bearer token; each frame's cues must be in the client's scope."""
    main, other = new_channel(local_ivs, "wsmain"), new_channel(local_ivs, "wsother")
    async with running_gateway(local_ivs, channels={"main": main}, tokens=tokens("none/*")) as gw:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await gw.http.ws_connect(f"{gw.url}/v1/ws")
        assert info.value.status == 401
        async with gw.http.ws_connect(f"{gw.url}/v1/ws", headers=bearer(QUIZ_TOKEN)) as ws:
            base = {"op": "cue", "type": "quiz", "data": {"question_id": 1}}
            await ws.send_json({**base, "ref": 1, "channel": "main"})
            await ws.send_json({**base, "ref": 2, "channel": other})
            await ws.send_json({"op": "cancel", "ref": 3, "channel": other, "id": "x"})
            answers = [await ws.receive_json(timeout=5) for _ in range(3)]
        ops = [(a["op"], a["ref"], a.get("error", {}).get("code")) for a in answers]
        assert ops == [("ack", 1, None), ("nack", 2, "forbidden"), ("nack", 3, "forbidden")]


async def test_websocket_takes_the_token_as_a_subprotocol_as_browsers_send_it(
    local_ivs: LocalIvs, caplog: pytest.LogCaptureFixture
) -> None:
    """A bearer subprotocol beside metadata-gateway.v1 authenticates; the token is never logged."""
    caplog.set_level(logging.DEBUG)
    main = new_channel(local_ivs, "wsproto")
    async with running_gateway(local_ivs, channels={"main": main}, tokens=tokens("none/*")) as gw:
        url = f"{gw.url}/v1/ws"
        protocols = (WS_PROTOCOL, f"{WS_BEARER_PREFIX}{QUIZ_TOKEN}")
        async with gw.http.ws_connect(url, protocols=protocols) as ws:
            assert ws.protocol == WS_PROTOCOL
            cue = {"channel": "main", "type": "quiz", "data": {"question_id": 1}}
            await ws.send_json({"op": "cue", "ref": 1, **cue})
            answer = await ws.receive_json(timeout=5)
        assert (answer["op"], answer["ref"]) == ("ack", 1)
        refused = {
            (WS_PROTOCOL, f"{WS_BEARER_PREFIX}mgw_wrong"): 401,
            (f"{WS_BEARER_PREFIX}{QUIZ_TOKEN}",): 400,  # no protocol the gateway could select
            (WS_PROTOCOL, f"{WS_BEARER_PREFIX}{QUIZ_TOKEN}", f"{WS_BEARER_PREFIX}x"): 400,
            (WS_PROTOCOL,): 401,  # the plain protocol alone carries no token
        }
        for offered, status in refused.items():
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await gw.http.ws_connect(url, protocols=offered)
            assert info.value.status == status, offered
    logged = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert QUIZ_TOKEN not in logged
    assert "mgw_wrong" not in logged


async def test_websocket_without_tokens_selects_the_plain_subprotocol(local_ivs: LocalIvs) -> None:
    """With auth off, a client offering metadata-gateway.v1 gets it selected, as browsers need."""
    async with running_gateway(local_ivs) as gw:
        async with gw.http.ws_connect(f"{gw.url}/v1/ws", protocols=(WS_PROTOCOL,)) as ws:
            assert ws.protocol == WS_PROTOCOL
        async with gw.http.ws_connect(f"{gw.url}/v1/ws") as ws:  # none offered: none selected
            assert ws.protocol is None
