"""The errors a request can be refused with, and the one way a validation error reads.

The API maps them to statuses (`NotFound` 404, `InvalidSpec` 422, `Conflict` 409,
`QueueFull` 429); the CLI and the UI show `str(error)` as it is, so all three say the
same thing about the same bad input.
"""

from __future__ import annotations

import json
import types
from collections.abc import Sequence
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

_MAX_ERRORS = 5
#: characters of a bad value quoted in a message, at most
_MAX_SHOWN = 60


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


def validation_message(
    errors: Sequence[Any], data: Any = None, prefix: str = "", model: Any = None
) -> str:
    """pydantic's errors (`ValidationError.errors()`) as one line naming each field, e.g.
    `optimizer.lr: Input should be greater than 0 (got -1); seeds[1]: ...`.

    `data` is the validated input: with it, the union tags pydantic puts in locations
    (`optimizer.adam.lr`, the member chosen by the `name` field) are dropped, so the path
    is the one the user wrote. `model`, the type validated, lets an unknown field list the
    valid ones. `prefix` goes in front (e.g. a query parameter's name).
    """
    parts = []
    for error in errors[:_MAX_ERRORS]:
        loc = _without_tags(list(error["loc"]), data)
        field = loc_text([prefix, *loc] if prefix else loc) or "body"
        parts.append(f"{field}: {_message(error, model)}")
    if len(errors) > _MAX_ERRORS:
        parts.append(f"and {len(errors) - _MAX_ERRORS} more")
    return "; ".join(parts)


def _message(error: Any, model: Any) -> str:
    """The error's message, with the valid fields for an unknown one and the value given
    for a bad scalar."""
    if error["type"] == "extra_forbidden":
        where = _model_at(model, list(error["loc"])[:-1])
        names = ", ".join(where.model_fields) if where is not None else ""
        return f"unknown field (valid: {names})" if names else "unknown field"
    message = str(error["msg"]).removeprefix("Value error, ")
    value = error.get("input")
    # the project's own checks (value_error) word their message whole, value included
    if error["type"] == "value_error" or value is None or isinstance(value, (dict, list)):
        return message
    shown = json.dumps(value, default=str)
    shown = shown if len(shown) <= _MAX_SHOWN else shown[: _MAX_SHOWN - 3] + "..."
    return f"{message} (got {shown})"


def _model_at(model: Any, loc: list[Any]) -> type[BaseModel] | None:
    """The pydantic model that `loc` (a raw error location, union tags included) points
    into, starting from `model`; None where it cannot be told."""
    current = model
    for part in loc:
        current = _step(current, part)
        if current is None:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _step(annotation: Any, part: Any) -> Any:
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        field = annotation.model_fields.get(part) if isinstance(part, str) else None
        return field.annotation if field is not None else None
    if get_origin(annotation) is list and isinstance(part, int):
        return get_args(annotation)[0]
    if get_origin(annotation) in (Union, types.UnionType):  # a tagged union: `part` is the tag
        for member in get_args(annotation):
            tag = getattr(member, "model_fields", {}).get("name")
            if tag is not None and tag.default == part:
                return member
    return None


def _unwrap(annotation: Any) -> Any:
    """`annotation` without `Annotated` and without an optional `None`."""
    while True:
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
            continue
        args = get_args(annotation)
        if get_origin(annotation) in (Union, types.UnionType) and type(None) in args:
            rest = [arg for arg in args if arg is not type(None)]
            if len(rest) == 1:
                annotation = rest[0]
                continue
        return annotation


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
