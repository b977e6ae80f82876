"""One contour sampler (server.tasks.contours) behind the API's contour route and the CLI's
trajectory plot: the objective the optimizer sees, on the task's plotting domain."""

from __future__ import annotations

import json

import pytest
import torch

from server.api.contour import landscape_contour
from server.tasks import task_config
from server.tasks.contours import sample_contour


def test_the_grid_holds_the_objective_over_the_domain() -> None:
    config = task_config({"name": "rosenbrock"})
    contour = sample_contour(config, seed=0, resolution=5)
    assert contour is not None
    task = config.build(torch.device("cpu"), 0)
    assert contour["domain"] == task.describe()["domain"]
    (x0, x1), (y0, y1) = contour["domain"]
    assert contour["x"][0] == x0 and contour["x"][-1] == x1 and len(contour["x"]) == 5
    assert contour["y"][0] == y0 and contour["y"][-1] == y1 and len(contour["y"]) == 5
    i, j = 1, 3  # z[i][j] is the objective at (x[j], y[i])
    point = torch.tensor([contour["x"][j], contour["y"][i]], dtype=torch.float32)
    assert contour["z"][i][j] == pytest.approx(float(task.value(point)), rel=1e-6)


@pytest.mark.parametrize(
    "spec", [{"name": "quadratic", "dim": 4}, {"name": "xor", "sequence_length": 8}]
)
def test_no_map_for_a_task_that_is_not_2d(spec: dict) -> None:
    assert sample_contour(task_config(spec), seed=0) is None


def test_the_api_answers_the_samplers_map() -> None:
    options = {"dim": 2, "condition_number": 50}
    api = landscape_contour("quadratic", json.dumps(options), seed=3, resolution=11)
    sampled = sample_contour(task_config({"name": "quadratic", **options}), 3, 11)
    assert sampled is not None and api == {"task": "quadratic", **sampled}


def test_the_cli_plot_draws_the_samplers_map() -> None:
    from playground import cli_files
    from playground.cli_output import RunRecord
    from server.specs import JobSpec

    spec = {"name": "quadratic", "dim": 2, "condition_number": 50}
    job = JobSpec.model_validate({"task": spec, "optimizer": {"name": "adam"}, "seed": 3})
    contour = cli_files._contour(RunRecord(index=1, label="adam", job=job))
    sampled = sample_contour(job.task, 3, cli_files.CONTOUR_RESOLUTION)
    assert sampled is not None and contour == (sampled["x"], sampled["y"], sampled["z"])
