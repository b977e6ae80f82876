"""The base of every spec model: JSON's types, taken strictly.

Why strict: a request body is JSON, and pydantic's lax mode would read `true` or `"5"` as
a number, so a typo'd value would run instead of being refused. One exception, as in JSON
Schema: a float with no fractional part (`500.0`) is an integer. Floats must be finite
(Python's JSON parser accepts NaN and Infinity, JSON does not).
"""

from __future__ import annotations

import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, model_validator


def _tag_required(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """A literal `name` (the tag of a task or optimizer union) is documented as required:
    it defaults on the model, but a spec without it matches no union member."""
    field = model.model_fields.get("name")
    if field is not None and get_origin(field.annotation) is Literal:
        schema["required"] = sorted({*schema.get("required", []), "name"})


class StrictModel(BaseModel):
    """A pydantic model with strict types, no unknown fields and finite floats."""

    model_config = ConfigDict(
        strict=True, extra="forbid", allow_inf_nan=False, json_schema_extra=_tag_required
    )

    @model_validator(mode="before")
    @classmethod
    def _integral_floats_as_integers(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        fields = cls.model_fields  # a value for an unknown key is refused later
        integers = {key for key in data if key in fields and _integers_only(fields[key].annotation)}
        return {key: _as_integer(v) if key in integers else v for key, v in data.items()}


def _integers_only(annotation: Any) -> bool:
    """Whether `annotation` takes integers (possibly in a list or optional) but no floats."""
    leaves = _leaf_types(annotation)
    return int in leaves and float not in leaves


def _leaf_types(annotation: Any) -> set[Any]:
    origin = get_origin(annotation)
    if origin is Literal:
        return set()
    if origin is Annotated:
        return _leaf_types(get_args(annotation)[0])
    if origin in (Union, types.UnionType, list):
        return set().union(*(_leaf_types(arg) for arg in get_args(annotation)))
    return {annotation}


def _as_integer(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_as_integer(item) for item in value]
    return value
