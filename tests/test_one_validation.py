"""A hyperparameter's path from the HTTP body to `torch.optim` crosses one validation.

The job runs through the real worker body (`server.jobs.worker._run`: the stored spec
rebuilt, `run_job`), only in-process: an inline executor hands it a pipe stand-in. Every
validation of an optimizer's hyperparameters (in a JobSpec, a ComparisonSpec or
`optimizer_config`) first merges the task preset under them through `with_task_preset`,
so its calls list each validation of each optimizer entry.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from server import optimizers, specs
from server.jobs.executor import Executor
from server.jobs.worker import _run

pytestmark = pytest.mark.timeout(120)


class InlineExecutor(Executor):
    """Runs each job on a thread through the worker's own `_run`, one after the other."""

    def __init__(self) -> None:
        self.concurrency = 1
        self.threads: list[threading.Thread] = []

    def start(self, on_event: Any, on_exit: Any, on_launch: Any = None) -> None:
        self.on_event, self.on_exit = on_event, on_exit

    def submit(self, job_id: str, spec: dict[str, Any]) -> None:
        order = {"spec": spec, "threads": 1, "limits": {}, "memory_limit_mb": None}
        pipe = SimpleNamespace(send=lambda event: self.on_event(job_id, event))

        def work() -> None:
            _run(order, pipe, SimpleNamespace(value=0), None)
            self.on_exit(job_id, None)

        thread = threading.Thread(target=work)
        self.threads.append(thread)
        thread.start()
        thread.join()  # one at a time, so the counts below are the submissions'

    def cancel(self, job_id: str) -> bool:
        return False

    def running(self) -> list[str]:
        return []

    def queued(self) -> list[str]:
        return []

    def shutdown(self) -> None:
        for thread in self.threads:
            thread.join()


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """`validations`: the optimizer entries validated; `adam_lrs`: the lr each torch Adam got."""
    seen: dict[str, list[Any]] = {"validations": [], "adam_lrs": []}
    merge = optimizers.with_task_preset

    def counting(spec: Any, task_name: Any) -> Any:
        seen["validations"].append((task_name, spec))
        return merge(spec, task_name)

    monkeypatch.setattr(specs, "with_task_preset", counting)
    monkeypatch.setattr(optimizers, "with_task_preset", counting)
    adam_init = torch.optim.Adam.__init__

    def recording_init(self: Any, params: Any, *args: Any, **kwargs: Any) -> None:
        adam_init(self, params, *args, **kwargs)
        seen["adam_lrs"].append(self.param_groups[0]["lr"])

    monkeypatch.setattr(torch.optim.Adam, "__init__", recording_init)
    return seen


def test_a_job_is_validated_once_from_body_to_torch_optim(make_client, counted) -> None:
    client = make_client(executor=InlineExecutor())
    body = {
        "task": {"name": "rosenbrock"},
        "optimizer": {"name": "adam", "lr": 0.0123},
        "steps": 5.0,  # an integral float: an integer, as in JSON Schema
        "device": "cpu",
    }
    job = client.post("/api/jobs", json=body).json()
    assert client.get(f"/api/jobs/{job['id']}").json()["status"] == "succeeded"
    assert counted["validations"] == [("rosenbrock", {"name": "adam", "lr": 0.0123})]
    assert counted["adam_lrs"] == [0.0123]


def test_a_comparison_is_validated_once_for_all_its_jobs(make_client, counted) -> None:
    client = make_client(executor=InlineExecutor())
    body = {
        "task": {"name": "rosenbrock"},
        "optimizers": [{"name": "adam", "lr": 0.02}, {"name": "adam", "lr": 0.03}],
        "seeds": [0, 1],
        "steps": 3,
        "device": "cpu",
    }
    comparison = client.post("/api/comparisons", json=body).json()
    jobs = client.get(f"/api/comparisons/{comparison['id']}").json()["jobs"]
    assert [job["status"] for job in jobs] == ["succeeded"] * 4
    # each entry once, not once per seed, per layer or again in the worker
    assert counted["validations"] == [("rosenbrock", entry) for entry in body["optimizers"]]
    assert counted["adam_lrs"] == [0.02, 0.02, 0.03, 0.03]
    identity = [(j["optimizer"], j["optimizer_label"], j["seed"], j["label"]) for j in jobs]
    assert identity == [
        ("adam", "adam", 0, "adam seed=0"),
        ("adam", "adam", 1, "adam seed=1"),
        ("adam", "adam#2", 0, "adam#2 seed=0"),
        ("adam", "adam#2", 1, "adam#2 seed=1"),
    ]
