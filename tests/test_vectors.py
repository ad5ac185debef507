"""The Python decoder on the shared vectors (clients/js's tests read the same file)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from metadata_gateway.client import CueDecoder, Damage

VECTORS = orjson.loads((Path(__file__).parent / "vectors" / "payloads.json").read_bytes())


def as_json(item: Any) -> dict[str, Any]:
    fields = asdict(item)
    return {"kind": fields.pop("kind"), **fields}


@pytest.mark.parametrize("vector", VECTORS["cases"], ids=[c["name"] for c in VECTORS["cases"]])
def test_decoder_meets_the_shared_vector(vector: dict[str, Any]) -> None:
    """Each payload yields exactly the expected cues and reports exactly the expected damage."""
    damages: list[Damage] = []
    decoder = CueDecoder(on_damage=damages.append)
    for payload, expect, damage in zip(
        vector["payloads"], vector["expect"], vector["damage"], strict=True
    ):
        damages.clear()
        assert [as_json(d) for d in decoder.decode(payload)] == expect
        assert [d.reason for d in damages] == damage


def test_vectors_cover_every_kind_of_damage() -> None:
    """The file holds corrupt, unsupported and incomplete cases, and multi-byte text in parts."""
    reasons = {r for c in VECTORS["cases"] for rs in c["damage"] for r in rs}
    assert reasons == {"corrupt", "unsupported", "incomplete"}


@given(st.data())
def test_damaged_payloads_never_raise_nor_yield_altered_cues(data: st.DataObject) -> None:
    """Any compressed or part payload of the vectors, cut or with one character changed: no
    exception, and any cue handed over is one that was posted, byte for byte (plain JSON has no
    checksum: a changed digit in it is a different, valid envelope)."""
    posted = {
        orjson.dumps(item)
        for case in VECTORS["cases"]
        for expect in case["expect"]
        for item in expect
        if item["kind"] == "cue"
    }
    case = data.draw(st.sampled_from(VECTORS["cases"]))
    payloads = list(case["payloads"])
    framed = [n for n, p in enumerate(payloads) if p.startswith(("~z", "~p"))]
    if not framed:
        return
    index = data.draw(st.sampled_from(framed))
    text = payloads[index]
    at = data.draw(st.integers(0, max(0, len(text) - 1)))
    if data.draw(st.booleans()):
        payloads[index] = text[:at]
    else:
        payloads[index] = text[:at] + data.draw(st.characters(codec="ascii")) + text[at + 1 :]
    decoder = CueDecoder()
    for payload in payloads:
        for item in decoder.decode(payload):
            if item.kind == "cue":
                assert orjson.dumps(as_json(item)) in posted
