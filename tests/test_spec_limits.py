"""What a job spec may ask for: bounded strings and lists, no silently ignored fields, a
dataset name instead of a server path, and no more memory than the per-job limit."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from fake_executor import FakeExecutor
from fastapi.testclient import TestClient

from playground.cli import main
from server.api import create_app
from server.optimizers import REGISTRY
from server.settings import Settings
from server.specs import ComparisonSpec, JobSpec
from server.tasks import TASKS
from server.tasks.cifar import MIN_TRAINING_IMAGES

ISSUE_SPEC = {
    "task": {
        "name": "xor",
        "cell": "lstm",
        "hidden_size": 512,
        "sequence_length": 512,
        "batch_size": 4096,
    },
    "optimizer": {"name": "adam"},
    "steps": 1,
}
#: a small machine's per-job limit, under which every schema maximum must be refused by
#: name or accepted
REFERENCE_LIMIT_MB = 2048


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("PSGD_PLAYGROUND_"):
            monkeypatch.delenv(name)


@pytest.fixture
def client(tmp_path):
    executor = FakeExecutor()
    settings = Settings(data_dir=tmp_path / "data", device="cpu")
    app = create_app(settings, executor=executor)
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        client.executor = executor  # type: ignore[attr-defined]
        yield client


def _detail(response: Any) -> str:
    return response.json()["detail"]


# ------------------------------------------------------------------------- epochs
def test_epochs_on_a_task_without_epochs_is_refused(client: TestClient) -> None:
    job = {"task": {"name": "xor"}, "optimizer": {"name": "adam"}, "epochs": 10**9}
    response = client.post("/api/jobs", json=job)
    assert response.status_code == 422
    assert _detail(response).startswith("epochs: task 'xor' has no epochs")
    comparison = {"task": {"name": "rosenbrock"}, "optimizers": [{"name": "adam"}], "epochs": 2}
    response = client.post("/api/comparisons", json=comparison)
    assert response.status_code == 422 and _detail(response).startswith("epochs:")


def test_steps_and_epochs_together_are_refused(client: TestClient) -> None:
    # The runner took steps and ignored epochs, though epochs were said to override them.
    job = {"task": {"name": "cifar10"}, "optimizer": {"name": "sgd"}, "steps": 3, "epochs": 2}
    response = client.post("/api/jobs", json=job)
    assert response.status_code == 422
    assert _detail(response) == "epochs: give steps or epochs, not both"
    del job["steps"]
    assert client.post("/api/jobs", json=job).status_code == 201


# ------------------------------------------------------------------ bounded strings
def _unbounded(schema: dict[str, Any], where: str, defs: dict[str, Any]) -> list[str]:
    """Every string without maxLength (or a fixed set of values) and every array without
    maxItems in a JSON schema, by location."""
    if "$ref" in schema:
        return _unbounded(defs[schema["$ref"].rsplit("/", 1)[-1]], where, defs)
    found = []
    kind = schema.get("type")
    fixed = "enum" in schema or "const" in schema
    if kind == "string" and not fixed and "maxLength" not in schema:
        found.append(where)
    if kind == "array":
        if "maxItems" not in schema:
            found.append(where)
        found += _unbounded(schema.get("items", {}), f"{where}[]", defs)
    for name, sub in schema.get("properties", {}).items():
        found += _unbounded(sub, f"{where}.{name}", defs)
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, []):
            found += _unbounded(sub, where, defs)
    if isinstance(schema.get("additionalProperties"), dict):
        found += _unbounded(schema["additionalProperties"], f"{where}.*", defs)
    return found


@pytest.mark.parametrize(
    "model",
    [*TASKS.values(), *REGISTRY.values(), JobSpec],
    ids=lambda m: m.__name__,
)
def test_every_string_and_list_of_a_spec_is_bounded(model: Any) -> None:
    schema = model.model_json_schema()
    assert _unbounded(schema, model.__name__, schema.get("$defs", {})) == []


def test_comparison_lists_are_bounded() -> None:
    # Its task and optimizers are free-form here and validated as JobSpecs (above).
    properties = ComparisonSpec.model_json_schema()["properties"]
    assert properties["optimizers"]["maxItems"] == 32
    assert properties["seeds"]["maxItems"] == 64


def test_an_overlong_string_is_refused_by_name(client: TestClient) -> None:
    job = {"task": {"name": "cifar10", "dataset": "a" * 10_000}, "optimizer": {"name": "sgd"}}
    response = client.post("/api/jobs", json=job)
    assert response.status_code == 422 and _detail(response).startswith("task.dataset:")
    job = {"task": {"name": "rosenbrock", "dim": 2, "start": [0.0] * 5000}, "optimizer": "adam"}
    job["optimizer"] = {"name": "adam"}
    response = client.post("/api/jobs", json=job)
    assert response.status_code == 422 and _detail(response).startswith("task.start:")


# ------------------------------------------------------------------ dataset names
@pytest.mark.parametrize(
    "name",
    ["/dev/zero", "../../etc/passwd", "a/b", ".hidden", "..", "a..b", "~root", "x y", ""],
)
def test_a_dataset_is_a_name_not_a_path(client: TestClient, name: str) -> None:
    job = {"task": {"name": "cifar10", "dataset": name}, "optimizer": {"name": "sgd"}}
    response = client.post("/api/jobs", json=job)
    assert response.status_code == 422
    assert _detail(response).startswith("task.dataset:")


def test_data_path_is_gone_from_the_api(client: TestClient) -> None:
    job = {"task": {"name": "cifar10", "data_path": "/dev/zero"}, "optimizer": {"name": "sgd"}}
    response = client.post("/api/jobs", json=job)
    assert response.status_code == 422 and _detail(response).startswith("task.data_path:")


# ------------------------------------------------------------------------ memory
def test_the_issue_spec_is_refused_naming_the_field_to_shrink(client: TestClient) -> None:
    client.executor.memory_limit_mb = 3072  # type: ignore[attr-defined]
    response = client.post("/api/jobs", json=ISSUE_SPEC)
    assert response.status_code == 422
    detail = _detail(response)
    assert detail.startswith("task.batch_size: this job needs ≈ ")
    assert "more than the per-job memory limit of 3.0 GB" in detail
    assert "shrink task.batch_size or task.sequence_length" in detail
    assert client.executor.submitted == []  # type: ignore[attr-defined]


def test_no_limit_no_check(client: TestClient) -> None:
    assert getattr(client.executor, "memory_limit_mb", None) is None
    assert client.post("/api/jobs", json=ISSUE_SPEC).status_code == 201


def test_a_comparison_names_the_optimizer_whose_state_is_too_large(client: TestClient) -> None:
    client.executor.memory_limit_mb = 2048  # type: ignore[attr-defined]
    comparison = {
        "task": {"name": "cifar10"},
        "optimizers": [{"name": "sgd"}, {"name": "lbfgs", "history_size": 1000}],
        "epochs": 1,
    }
    response = client.post("/api/comparisons", json=comparison)
    assert response.status_code == 422
    assert _detail(response).startswith("optimizers[1].history_size: this job needs ≈ ")
    comparison["optimizers"][1]["history_size"] = 10
    assert client.post("/api/comparisons", json=comparison).status_code == 201


def test_dense_preconditioner_on_a_large_model_is_refused(client: TestClient) -> None:
    client.executor.memory_limit_mb = 4096  # type: ignore[attr-defined]
    job = {"task": {"name": "xor", "hidden_size": 512}, "optimizer": {"name": "psgd-dense"}}
    response = client.post("/api/jobs", json=job)
    assert response.status_code == 422
    assert _detail(response).startswith("task.hidden_size: ")
    assert "change optimizer.name" in _detail(response)


def _size_maxima() -> list[tuple[str, str, int]]:
    cases = []
    for task_name, config in TASKS.items():
        for field, schema in config.model_json_schema()["properties"].items():
            if schema.get("type") == "integer" and "maximum" in schema:
                cases.append((task_name, field, schema["maximum"]))
    return cases


@pytest.mark.parametrize(("task_name", "field", "maximum"), _size_maxima())
def test_each_size_maximum_is_accepted_or_refused_by_the_estimate(
    client: TestClient, task_name: str, field: str, maximum: int
) -> None:
    """A field at its schema maximum, the others at their defaults, with every optimizer:
    accepted under the reference limit, or refused naming a field of the spec."""
    client.executor.memory_limit_mb = REFERENCE_LIMIT_MB  # type: ignore[attr-defined]
    client.executor.pause()  # type: ignore[attr-defined]
    task = {"name": task_name, field: maximum}
    if task_name == "quadratic" and field == "negative_eigenvalues":
        task["dim"] = maximum  # at most dim
    if task_name == "cifar10" and field == "validation_size":
        task["train_size"] = maximum + MIN_TRAINING_IMAGES  # carved from train_size
    schema_fields = set(TASKS[task_name].model_fields)
    for optimizer in REGISTRY:
        job = {"task": task, "optimizer": {"name": optimizer}, "steps": 1}
        response = client.post("/api/jobs", json=job)
        if response.status_code == 201:
            continue
        detail = _detail(response)
        assert response.status_code == 422 and "per-job memory limit of 2.0 GB" in detail, detail
        where, _, rest = detail.partition(".")
        named = rest.split(":", 1)[0]
        assert (where, named) in {("task", f) for f in schema_fields} | {
            ("optimizer", f) for f in REGISTRY[optimizer].model_fields
        }, detail


# ----------------------------------------------------------------------- the CLI
CIFAR_SUBSET = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / ("cifar-10-subset-python.tar.gz")
)


def _cli_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--task", "xor", "--epochs", "2"], "epochs: task 'xor' has no epochs"),
        (["--task", "rosenbrock", "--data", "x.tar.gz"], "--data: only the cifar10 task"),
        (["--task", "cifar10", "--data", "/nonexistent/x"], "--data /nonexistent/x: no such"),
        (
            ["--task", "cifar10", "--task-option", "dataset=a.tar.gz", "--data", "."],
            "--data: give --data PATH or the task option dataset, not both",
        ),
        (
            ["--task", "cifar10", "--task-option", "data_path=/dev/zero"],
            "data_path: unknown field",
        ),
    ],
)
def test_cli_refuses_by_flag(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    err = _cli_error(["run", *argv, "--optimizer", "adam", "--out", str(tmp_path)], capsys)
    assert needle in err


def test_cli_refuses_a_job_larger_than_the_machine(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = ["run", "--task", "xor", "--task-option", "hidden_size=512"]
    err = _cli_error([*argv, "--optimizer", "psgd-dense", "--out", str(tmp_path)], capsys)
    assert "spec: task.hidden_size: this job needs ≈ " in err
    assert "more than this machine's memory" in err and "change optimizer.name" not in err
    assert "psgd-dense.name" in err  # the optimizer is named as --set names it


def test_cli_reads_a_local_data_path(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    if not CIFAR_SUBSET.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CIFAR_SUBSET} is missing")
        pytest.skip(f"{CIFAR_SUBSET} is missing")
    options = ["train_size=100", "test_size=100", "batch_size=100"]
    argv = ["run", "--task", "cifar10", "--optimizer", "sgd", "--steps", "1", "--plot", "none"]
    for option in options:
        argv += ["--task-option", option]
    code = main([*argv, "--data", str(CIFAR_SUBSET), "--out", str(tmp_path), "--quiet"])
    assert code == 0, capsys.readouterr()
    events = (tmp_path / "events").glob("*.jsonl")
    started = json.loads(next(iter(events)).read_text().splitlines()[0])
    assert started["meta"]["task"]["dataset"] == str(CIFAR_SUBSET)
