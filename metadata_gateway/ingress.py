"""From request bytes to queued cues: the part HTTP and WebSocket ingress share."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson

from metadata_gateway.cues import Cue
from metadata_gateway.errors import CueError
from metadata_gateway.gateway import Accepted
from metadata_gateway.intake import Intake
from metadata_gateway.metrics import Metrics


def decode_json(body: bytes | str) -> Any:
    """Parse a request body; raise `invalid_json` for anything that is not JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise CueError("invalid_json", f"the body is not valid JSON: {exc}", status=400) from None


async def accept_document(
    intake: Intake,
    metrics: Metrics,
    document: Any,
    *,
    authorize: Callable[[Sequence[Cue]], None] | None = None,
) -> list[Accepted]:
    """Keep a single cue object or a `{"cues": [...]}` batch through `intake`, counting what
    happened."""
    cues, batch = split_document(metrics, document)
    try:
        answers = await intake.submit(cues, batch=batch, authorize=authorize)
    except CueError as exc:
        raise reject(metrics, exc, len(cues)) from None
    count_answers(metrics, answers)
    return answers


def split_document(metrics: Metrics, document: Any) -> tuple[list[Any], bool]:
    """The cue objects a document holds, and whether it was a batch."""
    batch = isinstance(document, dict) and "cues" in document and "channel" not in document
    if batch:
        cues = document["cues"]
        extra = document.keys() - {"cues"}
        if not isinstance(cues, list) or not cues:
            error = CueError(
                "invalid_cue", "cues must be a non-empty list", status=400, field="cues"
            )
            raise reject(metrics, error, 1)
        if extra:
            error = CueError(
                "invalid_cue", f"unknown field {sorted(extra)[0]!r}", status=400, field="cues"
            )
            raise reject(metrics, error, len(cues))
    else:
        cues = [document]
    return cues, batch


def count_answers(metrics: Metrics, answers: Sequence[Accepted]) -> None:
    """Count accepted cues and duplicates."""
    for answer in answers:
        metrics.received.labels(answer.type).inc()
        if answer.status == "duplicate":
            metrics.duplicates.inc()


def reject(metrics: Metrics, error: CueError, count: int = 1) -> CueError:
    """Count `count` cues refused for `error`, and return the error to raise."""
    metrics.rejected.labels(error.code).inc(count)
    return error
