"""The specs: strict JSON types, the task preset, expansion and labels, stored specs."""

from __future__ import annotations

import pytest

from server.errors import InvalidSpec
from server.specs import (
    ComparisonSpec,
    JobSpec,
    expand,
    optimizer_labels,
    parse_comparison,
    parse_job,
    stored_job,
)

JOB = {"task": {"name": "rosenbrock"}, "optimizer": {"name": "adam"}}


def test_repeated_optimizer_names_are_numbered_from_the_second() -> None:
    assert optimizer_labels(["adam", "sgd", "adam", "adam"]) == ["adam", "sgd", "adam#2", "adam#3"]


def test_a_comparison_expands_into_labelled_jobs_with_its_settings() -> None:
    comparison = parse_comparison(
        {
            "task": {"name": "rosenbrock"},
            "optimizers": [{"name": "psgd-dense"}, {"name": "adam", "lr": 0.02}, {"name": "adam"}],
            "seeds": [3, 4],
            "steps": 7,
            "target": 1e-3,
        }
    )
    jobs = expand(comparison)
    assert [job.label for job in jobs] == [
        "psgd-dense seed=3", "psgd-dense seed=4", "adam seed=3",
        "adam seed=4", "adam#2 seed=3", "adam#2 seed=4",
    ]  # fmt: skip
    first = jobs[0].spec
    assert isinstance(first, JobSpec) and first.optimizer.fitting == "newton"  # the preset
    assert (first.steps, first.target, first.task.name) == (7, 1e-3, "rosenbrock")
    assert jobs[2].spec.optimizer.lr == 0.02
    # the expanded job is what validating it would give
    assert jobs[2].spec == parse_job(jobs[2].spec.model_dump())


@pytest.mark.parametrize(
    ("change", "message"),
    [  # a message ending in "…" is a prefix; the others are the whole text
        ({"seed": True}, "seed: Input should be a valid integer (got true)"),
        ({"seed": "3"}, 'seed: Input should be a valid integer (got "3")'),
        ({"steps": 2.5}, "steps: Input should be a valid integer (got 2.5)"),
        ({"target": float("nan")}, "target: Input should be a finite number (got NaN)"),
        ({"optimizer": {"name": "adam", "lr": "0.1"}}, "optimizer.lr: Input should be a valid …"),
        (
            {"optimizer": {"name": "adam", "lr": -1}},
            "optimizer.lr: Input should be greater than 0 (got -1)",
        ),
        (
            {"optimizer": {"name": "sgd", "mom": 1}},
            "optimizer.mom: unknown field (valid: name, lr, momentum, weight_decay)",
        ),
        ({"colour": "red"}, "colour: unknown field (valid: task, steps, epochs, …"),
        ({"task": {"name": "rosenbrock", "dim": 3}}, "task.dim: rosenbrock dim must be even …"),
        # the project's own checks word their message whole: no "(got …)" added
        ({"epochs": 2}, "epochs: task 'rosenbrock' has no epochs; give steps instead"),
        (
            {"steps": 1, "task": {"name": "cifar10"}, "epochs": 2},
            "epochs: give steps or epochs, not both",
        ),
    ],
)
def test_json_types_are_strict_and_errors_name_the_field(change: dict, message: str) -> None:
    with pytest.raises(InvalidSpec) as error:
        parse_job({**JOB, **change})
    text = str(error.value)
    assert text.startswith(message.removesuffix("…")) if message.endswith("…") else text == message
    assert "\n" not in text


def test_an_integral_float_is_an_integer_everywhere() -> None:
    job = parse_job({**JOB, "steps": 5.0, "seed": 2.0, "task": {"name": "rosenbrock", "dim": 4.0}})
    assert (job.steps, job.seed, job.task.dim) == (5, 2, 4)
    assert isinstance(job.task.dim, int)
    comparison = parse_comparison(
        {"task": JOB["task"], "optimizers": [JOB["optimizer"]], "seeds": [1.0, 2]}
    )
    assert comparison.seeds == [1, 2] and all(type(s) is int for s in comparison.seeds)


def test_comparison_errors_name_the_entry() -> None:
    body = {"task": {"name": "rosenbrock"}, "optimizers": [{"name": "adam"}, {"name": "sgd"}]}
    with pytest.raises(InvalidSpec, match=r"^optimizers\[1\]\.lr: Input should be greater"):
        parse_comparison({**body, "optimizers": [{"name": "adam"}, {"name": "sgd", "lr": 0}]})
    with pytest.raises(InvalidSpec, match=r"^seeds\[1\]: Input should be greater"):
        parse_comparison({**body, "seeds": [0, -1]})
    assert isinstance(parse_comparison(body), ComparisonSpec)


def test_a_stored_spec_comes_back_equal_without_validation() -> None:
    job = parse_job({**JOB, "optimizer": {"name": "psgd-kron", "lr": 0.5}, "seed": 9})
    rebuilt = stored_job(job.model_dump(mode="json"))
    assert rebuilt == job and type(rebuilt.optimizer) is type(job.optimizer)
    with pytest.raises(InvalidSpec, match="'gone'"):
        stored_job({**job.model_dump(mode="json"), "optimizer": {"name": "gone"}})
