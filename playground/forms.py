"""Forms from JSON schemas: one `Field` per property, and widget values ↔ spec values.

Pure (no Gradio), so the rules are unit-tested: `fields_of(schema)` says which input each
property gets (number, whole number, checkbox, dropdown, text, list of numbers) with its
label, description and bounds; `to_widget` / `from_widget` convert between what a spec
holds and what an input shows; `read_values` keeps only the values that differ from the
form's base (schema defaults under the task's preset), so a setup, and the share URL made
from it, says what the user changed and the server fills in the rest as it does for curl.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["int", "float", "bool", "choice", "text", "list"]
_ALTERNATION = re.compile(r"\^\(([\w.|-]+)\)\$")  # a pattern like ^(float32|float64)$


class FormError(ValueError):
    """A value the form cannot turn into a spec value; the message names the field."""


@dataclass(frozen=True)
class Field:
    key: str
    kind: Kind
    default: Any
    info: str
    choices: tuple[str, ...] = ()  # a dropdown's values; the words a mixed text field takes
    nullable: bool = False
    numbers: bool = False  # a text field that takes numbers too (e.g. number | "auto")


def fields_of(schema: Mapping[str, Any]) -> list[Field]:
    """A field per property of a catalogue schema, in schema order; `name` (the tag) skipped."""
    return [
        _field(key, prop) for key, prop in (schema.get("properties") or {}).items() if key != "name"
    ]


def _field(key: str, prop: Mapping[str, Any]) -> Field:
    variants = list(prop.get("anyOf") or [prop])
    nullable = any(v.get("type") == "null" for v in variants)
    real = [v for v in variants if v.get("type") != "null"]
    bounds = [text for v in real if (text := _bounds(v))]
    info = prop.get("description", "") + (f" ({'; '.join(bounds)})" if bounds else "")
    common = {"key": key, "default": prop.get("default"), "info": info, "nullable": nullable}
    choices = _choices(real)
    if choices is not None:
        return Field(kind="choice", choices=choices, **common)
    types = [v.get("type") for v in real]
    if len(types) == 1 and types[0] in ("integer", "number", "boolean", "array"):
        kinds: dict[Any, Kind] = {
            "integer": "int",
            "number": "float",
            "boolean": "bool",
            "array": "list",
        }
        return Field(kind=kinds[types[0]], **common)
    words = tuple(str(v["const"]) for v in real if "const" in v)
    numbers = bool({"integer", "number"} & set(types))
    return Field(kind="text", choices=words, numbers=numbers, **common)


def _choices(variants: list[Mapping[str, Any]]) -> tuple[str, ...] | None:
    """The values of an enum, a string const, or a pattern listing alternatives; else None."""
    values: list[str] = []
    for v in variants:
        if "enum" in v:
            values += [str(e) for e in v["enum"]]
        elif "const" in v:
            values.append(str(v["const"]))
        elif (match := _ALTERNATION.fullmatch(v.get("pattern", ""))) is not None:
            values += match.group(1).split("|")
        else:
            return None
    return tuple(values) or None


def _bounds(variant: Mapping[str, Any]) -> str:
    parts = []
    for key, sign in (
        ("minimum", "≥"),
        ("exclusiveMinimum", ">"),
        ("maximum", "≤"),
        ("exclusiveMaximum", "<"),
    ):
        if key in variant:
            parts.append(f"{sign} {variant[key]:g}")
    return ", ".join(parts)


def base_values(fields: Sequence[Field], preset: Mapping[str, Any] | None = None) -> dict:
    """What a field holds when the user sets nothing: the task's preset over the default."""
    return {f.key: (preset or {}).get(f.key, f.default) for f in fields}


def number_step(kind: Kind, *values: Any) -> float:
    """How far ArrowUp/ArrowDown move a number input of `kind` ("int" or "float"): a tenth
    of the order of magnitude of the first positive value among `values` (what the input
    shows, what the server fills in, the default), so lr 0.01 steps to 0.011 and 1e-8 to
    1.1e-8; whole numbers step by at least 1. With no positive value: 1, or 0.1."""
    whole = kind == "int"
    for value in values:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if number and math.isfinite(value) and value > 0:
            step = 10.0 ** (math.floor(math.log10(value)) - 1)
            return max(1, int(step)) if whole else float(f"{step:.0e}")
    return 1 if whole else 0.1


# ---------------------------------------------------------------------- widget values
def to_widget(field: Field, value: Any) -> Any:
    """A spec value as its input shows it (text for lists and mixed fields, "" for null)."""
    if field.kind in ("int", "float", "bool"):
        return value
    if value is None:
        return ""
    if field.kind == "list":
        return ", ".join(_number_text(v) for v in value)
    return _number_text(value) if isinstance(value, (int, float)) else str(value)


def _number_text(value: Any) -> str:
    return format(value, "g") if isinstance(value, float) else str(value)


def from_widget(field: Field, raw: Any) -> Any:
    """An input's value as the spec value; FormError naming the field when it is not one."""
    if isinstance(raw, str):
        raw = raw.strip()
    if raw is None or raw == "":
        if field.nullable:
            return None
        if field.kind in ("text", "list") and not field.numbers:
            return "" if field.kind == "text" else []
        raise FormError(f"{field.key}: a value is required")
    if field.kind == "int":
        if float(raw) != int(raw):
            raise FormError(f"{field.key}: a whole number is required, got {raw}")
        return int(raw)
    if field.kind == "float":
        return float(raw)
    if field.kind == "bool":
        return bool(raw)
    if field.kind == "choice":
        if raw not in field.choices:
            raise FormError(f"{field.key}: one of {', '.join(field.choices)}, got {raw!r}")
        return raw
    if field.kind == "list":
        try:
            return [_number(part) for part in raw.strip("[]").replace(",", " ").split()]
        except ValueError as error:
            raise FormError(f"{field.key}: numbers separated by commas ({error})") from error
    if field.numbers and raw not in field.choices:
        try:
            return _number(raw)
        except ValueError:
            words = [*map(repr, field.choices), *(["empty"] if field.nullable else [])]
            alternatives = "".join(f" or {word}" for word in words)
            raise FormError(f"{field.key}: a number{alternatives}, got {raw!r}") from None
    return raw


def _number(text: str) -> int | float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is not a finite number")
    return int(value) if re.fullmatch(r"[+-]?\d+", text) else value


def read_values(fields: Sequence[Field], raws: Sequence[Any], base: Mapping[str, Any]) -> dict:
    """The spec values of the inputs that differ from `base` (see `base_values`)."""
    values = {}
    for field, raw in zip(fields, raws, strict=True):
        value = from_widget(field, raw)
        if value != base.get(field.key):
            values[field.key] = value
    return values


def explain(detail: str, task: str, optimizers: Sequence[str]) -> str:
    """The API's error line in the form's words: `optimizers[1].lr: …` → `adam · lr: …`."""

    def optimizer(match: re.Match[str]) -> str:
        index = int(match.group(1))
        return f"{optimizers[index]} · " if index < len(optimizers) else match.group(0)

    detail = re.sub(r"\boptimizers\[(\d+)\]\.", optimizer, detail)
    return re.sub(r"\btask\.", f"{task} · ", detail)


# ---------------------------------------------------------------------- the setup form
@dataclass(frozen=True)
class Section:
    """One group of the form: the task's options or one optimizer's hyperparameters."""

    scope: Literal["task", "optimizer"]
    name: str  # the task's or the optimizer's
    description: str
    fields: list[Field]
    base: dict[str, Any]  # what the server fills in for a field left out
    values: dict[str, Any]  # what the inputs start with


def sections(
    tasks: Mapping[str, Mapping[str, Any]],
    optimizers: Mapping[str, Mapping[str, Any]],
    task: Mapping[str, Any],
    chosen: Sequence[str],
    hyperparameters: Mapping[str, Mapping[str, Any]],
) -> list[Section]:
    """The form of a setup: the task spec `task` ({"name", **options}) with its catalogue
    entry's schema, then one section per chosen optimizer, prefilled with the setup's
    `hyperparameters`, else the task's preset, else the schema defaults."""
    name = str(task.get("name", ""))
    entry = tasks.get(name) or {}
    fields = fields_of(entry.get("schema") or {})
    base = base_values(fields)
    description = entry.get("description", f"{name!r} is not in this server's catalogue")
    if entry.get("ready") is False:  # the catalogue says why, and what to do
        description += f"\n\n⚠ Not ready on this server: {entry.get('not_ready_reason')}"
    out = [
        Section(
            "task",
            name,
            description,
            fields,
            base,
            {**base, **{k: v for k, v in task.items() if k != "name"}},
        )
    ]
    presets = entry.get("presets") or {}
    for optimizer in chosen:
        known = optimizers.get(optimizer) or {}
        fields = fields_of(known.get("schema") or {})
        base = base_values(fields, presets.get(optimizer))
        out.append(
            Section(
                "optimizer",
                optimizer,
                known.get("description", f"{optimizer!r} is not in this server's catalogue"),
                fields,
                base,
                {**base, **(hyperparameters.get(optimizer) or {})},
            )
        )
    return out


def read_sections(
    form: Sequence[Section], raws: Sequence[Any]
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(task options, hyperparameters per optimizer) from the inputs, in `form`'s order,
    each holding only what differs from its section's base; FormError names the section."""
    task: dict[str, Any] = {}
    hyperparameters: dict[str, dict[str, Any]] = {}
    start = 0
    for section in form:
        own = raws[start : start + len(section.fields)]
        start += len(section.fields)
        try:
            values = read_values(section.fields, own, section.base)
        except FormError as error:
            raise FormError(f"{section.name} · {error}") from error
        if section.scope == "task":
            task = values
        elif values:
            hyperparameters[section.name] = values
    return task, hyperparameters
