"""The errors a request can be refused with, and the one way a validation error reads.

The API maps them to statuses (`NotFound` 404, `InvalidSpec` 422, `Conflict` 409,
`QueueFull` 429); the CLI and the UI show `str(error)` as it is, so all three say the
same thing about the same bad input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

_MAX_ERRORS = 5


class ServiceError(Exception):
    """A request the service refuses; `str(error)` is the message for the client."""


class NotFound(ServiceError):
    pass


class InvalidSpec(ServiceError):
    pass


class Conflict(ServiceError):
    pass


class QueueFull(ServiceError):
    pass


def validation_message(errors: Sequence[Any], data: Any = None, prefix: str = "") -> str:
    """pydantic's errors (`ValidationError.errors()`) as one line naming each field, e.g.
    `optimizer.lr: Input should be greater than 0; seeds[1]: ...`.

    `data` is the validated input: with it, the union tags pydantic puts in locations
    (`optimizer.adam.lr`, the member chosen by the `name` field) are dropped, so the path
    is the one the user wrote. `prefix` goes in front (e.g. a query parameter's name).
    """
    parts = []
    for error in errors[:_MAX_ERRORS]:
        loc = _without_tags(list(error["loc"]), data)
        field = loc_text([prefix, *loc] if prefix else loc) or "body"
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{field}: {message}")
    if len(errors) > _MAX_ERRORS:
        parts.append(f"and {len(errors) - _MAX_ERRORS} more")
    return "; ".join(parts)


def _without_tags(loc: list[Any], data: Any) -> list[Any]:
    """`loc` less each part that is not a key of the object it indexes but its `name`."""
    kept, current = [], data
    for part in loc:
        if isinstance(current, dict) and part not in current and current.get("name") == part:
            continue
        kept.append(part)
        if isinstance(current, dict):
            current = current.get(part)
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            current = current[part]
        else:
            current = None
    return kept


def loc_text(loc: Sequence[Any]) -> str:
    """A location as a path: `optimizers[1].lr`."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text
