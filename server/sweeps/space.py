"""Search spaces over an optimizer's hyperparameters, derived from the registry's schemas.

A parameter is a float range (linear or log), an int range or a list of choices. A user may
name a hyperparameter without a range (`"tune": ["lr"]`): its range then comes from the
optimizer's pydantic field (bounds, and the default a run would use: the task's preset, else
the schema's), so the registry stays the one source of what a hyperparameter may be:

* a literal or bool field: every value it allows;
* a positive float whose upper bound is at least 10× its default (learning rates, eps,
  damping): log-uniform over default / 100 … default × 100, cut to the bounds;
* a float in a bounded interval no wider than 1 (momentum, betas): linear over the
  interval, an open end pulled in by 0.1 % of its width;
* an int: log-uniform over default / 10 … default × 10, cut to the bounds.

Anything else (a default of 0 on a wide interval, an unbounded field, a field whose default
is None) has no sensible default range: the user gives one, and is told so by name.
"""

from __future__ import annotations

import math
import types
import typing
from typing import Any, Literal, Union

import annotated_types
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from pydantic import BaseModel, Field, model_validator

from server.strict import StrictModel

#: what a choice may be (Optuna's categorical values)
ChoiceValue = Union[bool, int, float, str, None]  # noqa: UP007 - a runtime alias
_OPEN_END_SHRINK = 1e-3


class Param(StrictModel):
    """A searched hyperparameter: `float` or `int` from `low` to `high` (`log`: uniform in
    the logarithm, both ends > 0), or `choice` among `values`.

    One model rather than a union of three: pydantic would put the union member's tag in
    the location of each error (`space.lr.float.low`), not the path the user wrote."""

    type: Literal["float", "int", "choice"]
    low: int | float | None = None
    high: int | float | None = None
    log: bool = False
    values: list[ChoiceValue] | None = Field(None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def _consistent(self) -> Param:
        if self.type == "choice":
            if self.values is None or self.low is not None or self.high is not None:
                raise ValueError("a choice has values, and no low or high")
            return self
        if self.low is None or self.high is None or self.values is not None:
            raise ValueError(f"a {self.type} range has low and high, and no values")
        if self.type == "int" and not (
            float(self.low).is_integer() and float(self.high).is_integer()
        ):
            raise ValueError("an int range has integer low and high")
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) is above high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got {self.low}")
        return self


class SpaceError(ValueError):
    """A hyperparameter that cannot be searched as asked; the message names it."""


def distribution(param: Param) -> BaseDistribution:
    """The Optuna distribution a parameter is sampled from."""
    if param.type == "choice":
        return CategoricalDistribution(param.values or [])
    assert param.low is not None and param.high is not None
    if param.type == "int":
        return IntDistribution(int(param.low), int(param.high), log=param.log)
    return FloatDistribution(param.low, param.high, log=param.log)


def bounds_samples(param: Param) -> list[Any]:
    """Values that stand for the whole parameter when checking it against the schema."""
    if param.type == "choice":
        return list(param.values or [])
    assert param.low is not None and param.high is not None
    if param.type == "int":
        return [int(param.low), int(param.high)]
    return [param.low, param.high]


def default_param(schema: type[BaseModel], name: str, default: Any) -> Param:
    """The range of hyperparameter `name` from its field in `schema` (see the module
    docstring); `default` is the value a run would use. Raises SpaceError."""
    field = schema.model_fields.get(name)
    if field is None or name == "name":
        known = ", ".join(n for n in schema.model_fields if n != "name")
        raise SpaceError(f"no hyperparameter {name!r}; it has {known}")
    annotation, optional = _without_none(field.annotation)
    if typing.get_origin(annotation) is Literal:
        return Param(
            type="choice", values=[*typing.get_args(annotation), *([None] if optional else [])]
        )
    if annotation is bool:
        return Param(type="choice", values=[False, True])
    low, high, open_low, open_high = _bounds(field.metadata)
    if annotation is int and isinstance(default, int) and default > 0:
        return Param(
            type="int",
            low=max(math.ceil(default / 10), low if low is not None else 1),
            high=min(default * 10, high if high is not None else default * 10),
            log=True,
        )
    if annotation is float and isinstance(default, (int, float)):
        if default > 0 and (high is None or high >= 10 * default):
            return Param(
                type="float",
                low=max(default / 100, low if low is not None and low > 0 else 0.0),
                high=min(default * 100, high if high is not None else math.inf),
                log=True,
            )
        if low is not None and high is not None and high - low <= 1:
            shrink = (high - low) * _OPEN_END_SHRINK
            return Param(
                type="float",
                low=low + shrink if open_low else low,
                high=high - shrink if open_high else high,
            )
    raise SpaceError(
        f"no default range for {name!r} (default {default!r}); give one, e.g. "
        '{"type": "float", "low": 0.0, "high": 0.1}'
    )


def _without_none(annotation: Any) -> tuple[Any, bool]:
    """`X | None` → (X, True); anything else → (it, False). A wider union stays as it is."""
    if typing.get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(members) < len(typing.get_args(annotation))
        if len(members) == 1:
            return members[0], optional
        literals = [a for a in members if typing.get_origin(a) is Literal]
        if len(literals) == len(members):  # Optional[Literal[...]] written as a union
            values = [v for lit in literals for v in typing.get_args(lit)]
            return Literal[tuple(values)], optional  # type: ignore[valid-type]
    return annotation, False


def _bounds(metadata: list[Any]) -> tuple[float | None, float | None, bool, bool]:
    """(low, high, low is open, high is open) from a field's annotated-types constraints."""
    low = high = None
    open_low = open_high = False
    for item in metadata:
        if isinstance(item, annotated_types.Gt):
            low, open_low = float(item.gt), True
        elif isinstance(item, annotated_types.Ge):
            low = float(item.ge)
        elif isinstance(item, annotated_types.Lt):
            high, open_high = float(item.lt), True
        elif isinstance(item, annotated_types.Le):
            high = float(item.le)
    return low, high, open_low, open_high
