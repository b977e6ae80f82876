"""The schema forms' rules (playground/forms.py), without Gradio or a server: which input
each property gets, how values convert, and what a form sends."""

from __future__ import annotations

import pytest

from playground import forms
from server import optimizers, tasks

TASKS = {entry["name"]: entry for entry in tasks.catalogue()}
OPTIMIZERS = {entry["name"]: entry for entry in optimizers.catalogue()}
TASKS["rosenbrock"]["presets"] = optimizers.TASK_PRESETS["rosenbrock"]


def by_key(schema: dict) -> dict[str, forms.Field]:
    return {field.key: field for field in forms.fields_of(schema)}


def test_every_property_gets_an_input_of_its_type_with_bounds_in_words():
    kron = by_key(OPTIMIZERS["psgd-kron"]["schema"])
    assert "name" not in kron
    assert kron["lr"].kind == "float" and kron["lr"].default == 0.001
    assert kron["lr"].info == (  # psgd's default depends on the fitting mode
        "learning rate (default 0.001 with whitening, 0.01 with Newton fitting) (> 0, ≤ 100)"
    )
    assert kron["momentum"].info.endswith("(≥ 0, < 1)")
    assert kron["fitting"].kind == "choice" and kron["fitting"].choices == ("whiten", "newton")
    assert kron["max_size"].kind == "int" and kron["max_size"].nullable
    dtype = kron["preconditioner_dtype"]
    assert dtype.kind == "choice" and dtype.nullable and dtype.default is None
    clip = kron["update_clip_rms"]  # number | "auto" | null
    assert (clip.kind, clip.choices, clip.numbers, clip.nullable) == ("text", ("auto",), True, True)
    quadratic = by_key(TASKS["quadratic"]["schema"])
    assert quadratic["rotate"].kind == "bool" and quadratic["rotate"].default is True
    assert quadratic["dim"].kind == "int" and "(≥ 2, ≤ 4096)" in quadratic["dim"].info
    assert quadratic["start"].kind == "list" and quadratic["start"].nullable
    assert quadratic["dtype"].choices == ("float32", "float64")  # from its pattern
    assert by_key(TASKS["cifar10"]["schema"])["dataset"].kind == "text"
    lbfgs = by_key(OPTIMIZERS["lbfgs"]["schema"])["line_search_fn"]
    assert lbfgs.kind == "choice" and lbfgs.choices == ("strong_wolfe",) and lbfgs.nullable


@pytest.mark.parametrize(
    ("schema", "key", "spec_value", "shown"),
    [
        ("quadratic", "dim", 4, 4),
        ("quadratic", "start", [1.0, -2.5], "1, -2.5"),
        ("quadratic", "start", None, ""),
        ("quadratic", "rotate", False, False),
        ("psgd-kron", "update_clip_rms", "auto", "auto"),
        ("psgd-kron", "update_clip_rms", 2.0, "2"),
        ("psgd-kron", "update_clip_rms", None, ""),
        ("psgd-kron", "preconditioner_dtype", None, ""),
        ("psgd-kron", "preconditioner_dtype", "bf16", "bf16"),
        ("psgd-kron", "damping", 1e-9, 1e-9),
    ],
)
def test_values_round_trip_through_their_inputs(schema, key, spec_value, shown):
    entry = TASKS.get(schema) or OPTIMIZERS[schema]
    field = by_key(entry["schema"])[key]
    assert forms.to_widget(field, spec_value) == shown
    assert forms.from_widget(field, shown) == spec_value


@pytest.mark.parametrize(
    ("key", "raw", "message"),
    [
        ("dim", None, "dim: a value is required"),
        ("dim", 2.5, "dim: a whole number is required, got 2.5"),
        ("start", "1, x", "start: numbers separated by commas"),
        ("start", "1, inf", "start: numbers separated by commas"),
        ("dtype", "float16", "dtype: one of float32, float64, got 'float16'"),
    ],
)
def test_values_the_form_cannot_send_are_named(key, raw, message):
    field = by_key(TASKS["quadratic"]["schema"])[key]
    with pytest.raises(forms.FormError, match=message):
        forms.from_widget(field, raw)


def test_a_mixed_field_takes_numbers_its_words_or_empty():
    field = by_key(OPTIMIZERS["psgd-lra"]["schema"])["update_clip_rms"]
    assert forms.from_widget(field, " 3 ") == 3 and forms.from_widget(field, "0.5") == 0.5
    with pytest.raises(forms.FormError, match="a number or 'auto' or empty, got 'big'"):
        forms.from_widget(field, "big")


def test_the_form_starts_from_the_setup_then_the_task_preset_then_the_schema():
    form = forms.sections(
        TASKS,
        OPTIMIZERS,
        {"name": "rosenbrock", "start": [0.0, 1.0]},
        ["psgd-dense", "adam", "sgd"],
        {"adam": {"lr": 0.05}},
    )
    assert [(s.scope, s.name) for s in form] == [
        ("task", "rosenbrock"),
        ("optimizer", "psgd-dense"),
        ("optimizer", "adam"),
        ("optimizer", "sgd"),
    ]
    task, dense, adam, sgd = form
    assert task.values["start"] == [0.0, 1.0] and task.base["start"] is None
    assert dense.values["fitting"] == "newton" and dense.base["lr"] == 1.0  # the preset
    assert adam.values["lr"] == 0.05 and adam.base["lr"] == 0.01
    assert sgd.values["momentum"] == 0.0  # the schema default
    unknown = forms.sections(TASKS, OPTIMIZERS, {"name": "nope"}, ["bogus"], {})
    assert [s.fields for s in unknown] == [[], []]
    assert "not in this server's catalogue" in unknown[1].description


def test_reading_the_form_keeps_only_what_differs_from_the_base():
    form = forms.sections(TASKS, OPTIMIZERS, {"name": "rosenbrock"}, ["adam"], {})
    task, adam = form
    raws = [forms.to_widget(f, task.values[f.key]) for f in task.fields]
    raws += [forms.to_widget(f, adam.values[f.key]) for f in adam.fields]
    assert forms.read_sections(form, raws) == ({}, {})
    keys = [f.key for f in task.fields] + [f.key for f in adam.fields]
    raws[keys.index("start")] = "0, 0.5"
    raws[len(task.fields) + keys[len(task.fields) :].index("lr")] = 0.2
    assert forms.read_sections(form, raws) == ({"start": [0, 0.5]}, {"adam": {"lr": 0.2}})
    raws[keys.index("dim")] = None
    with pytest.raises(forms.FormError, match=r"^rosenbrock · dim: a value is required"):
        forms.read_sections(form, raws)


def test_server_errors_name_the_optimizer_and_task_as_the_form_does():
    detail = "optimizers[1].lr: Input should be greater than 0; task.dim: must be even"
    explained = forms.explain(detail, "rosenbrock", ["psgd-dense", "adam"])
    assert explained == "adam · lr: Input should be greater than 0; rosenbrock · dim: must be even"
    assert forms.explain("optimizers[5].lr: x", "t", ["adam"]) == "optimizers[5].lr: x"


@pytest.mark.parametrize(
    ("kind", "values", "step"),
    [
        ("float", (0.01,), 0.001),  # ArrowUp on lr 0.01 gives 0.011, not 1.01
        ("float", (0.05,), 0.001),
        ("float", (1.0,), 0.1),
        ("float", (1e-8,), 1e-9),
        ("float", (None, 0.002), 0.0001),  # empty: scaled by what the server fills in
        ("float", (0.0, None), 0.1),  # nothing positive to scale by
        ("int", (20,), 1),
        ("int", (10000,), 1000),
        ("int", (None,), 1),
        ("float", (True,), 0.1),  # a bool is no magnitude
    ],
)
def test_numbers_step_by_a_tenth_of_their_magnitude(kind, values, step):
    assert forms.number_step(kind, *values) == step
