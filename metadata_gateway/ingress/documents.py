"""From a decoded request document to kept cues: the step HTTP and WebSocket ingress share.
Validation happens in `validation.py`, authorization in `auth.py`, keeping behind `Intake`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from metadata_gateway.core.errors import CueError
from metadata_gateway.core.validation import CueRules, cue_count, parse_cues, split_document
from metadata_gateway.ingress.auth import Caller
from metadata_gateway.intake.seam import Accepted, Intake
from metadata_gateway.telling.metrics import Metrics


async def accept_document(
    document: Any, *, intake: Intake, rules: CueRules, caller: Caller, metrics: Metrics
) -> list[Accepted]:
    """Validate, authorize and keep a single cue object or a `{"cues": [...]}` batch, all or
    none, counting what happened; raise the one `CueError` of a refusal."""
    try:
        objs, batch = split_document(document)
        intake.ensure_open()
        cues = parse_cues(objs, batch=batch, rules=rules)
        caller.authorize(cues)
        answers = await intake.keep(cues)
    except CueError as exc:
        raise reject(metrics, exc, cue_count(document)) from None
    count_answers(metrics, answers)
    return answers


def count_answers(metrics: Metrics, answers: Sequence[Accepted]) -> None:
    """Count accepted cues and duplicates."""
    duplicates = 0
    for answer in answers:
        metrics.count_received(answer.type)
        if answer.status == "duplicate":
            duplicates += 1
    if duplicates:
        metrics.duplicates.inc(duplicates)


def reject(metrics: Metrics, error: CueError, count: int = 1) -> CueError:
    """Count `count` cues refused for `error`, and return the error to raise."""
    metrics.rejected.labels(error.code).inc(count)
    return error
