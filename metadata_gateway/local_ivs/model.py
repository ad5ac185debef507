"""IVS's own service model, as botocore ships it: where the local IVS takes its validation
patterns and lengths from, so that it never shares a pattern with the gateway it tests."""

from __future__ import annotations

import functools
import re
from typing import Any

from botocore.loaders import Loader

SERVICE = "ivs"


@functools.cache
def _shapes() -> dict[str, Any]:
    model: dict[str, Any] = Loader().load_service_model(SERVICE, "service-2")
    shapes: dict[str, Any] = model["shapes"]
    return shapes


def shape(name: str) -> dict[str, Any]:
    """The model's definition of shape `name` (a KeyError names a shape the model lacks)."""
    found: dict[str, Any] = _shapes()[name]
    return found


def pattern(name: str) -> re.Pattern[str]:
    """The `pattern` of string shape `name`, compiled, to be matched whole."""
    text: str = shape(name)["pattern"]
    return re.compile(text.removeprefix("^").removesuffix("$"))


def max_length(name: str) -> int:
    """The `max` length of string shape `name`."""
    return int(shape(name)["max"])
