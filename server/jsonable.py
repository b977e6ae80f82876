"""Values made fit for JSON, which has no NaN or infinity (a diverged run's losses are
exactly that): the API, the event stream and the CLI's files all write them as null."""

from __future__ import annotations

import math
from typing import Any


def json_safe(value: Any) -> Any:
    """`value` with NaN and ±inf replaced by None, in nested dicts, lists and tuples too."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value
