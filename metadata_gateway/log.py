"""Logs as one JSON object per line, with whatever `extra` context a call passes."""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson
from aiohttp.http_exceptions import HttpProcessingError

# Attributes every LogRecord has; anything else came from `extra=` and belongs in the line.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Formats a record as `{"time", "level", "logger", "message", ...extra}`."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def setup_logging(level: str = "info") -> None:
    """Send every log line to stderr as JSON at `level`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access log repeats what the metrics say, one line per cue posted.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # Malformed requests are the client's fault, answered 4xx: no error line (nor a way for a
    # client to fill the log) for each.
    logging.getLogger("aiohttp.server").addFilter(_drop_client_errors)


def _drop_client_errors(record: logging.LogRecord) -> bool:
    exc = record.exc_info[1] if record.exc_info else None
    while exc is not None:
        if isinstance(exc, HttpProcessingError) and 400 <= (exc.code or 0) < 500:
            return False
        exc = exc.__cause__ or exc.__context__
    return True
