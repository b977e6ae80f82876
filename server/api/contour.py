"""A 2-D landscape sampled on a grid: the background of trajectory plots.

Clients draw paths over it without importing the task code, so a UI pointed at a remote
server still gets the map. Only the 2-D landscapes have one; the task is built on the CPU
with the given options and seed (a rotated quadratic depends on it).
"""

from __future__ import annotations

import json
from typing import Any

import torch
from pydantic import ValidationError

from server.jobs.service import InvalidSpec, NotFound, validation_message
from server.tasks import TASKS
from server.tasks.landscapes import LANDSCAPE_CONFIGS

LANDSCAPES = tuple(cls.model_fields["name"].default for cls in LANDSCAPE_CONFIGS)


def landscape_contour(name: str, options: str, seed: int, resolution: int) -> dict[str, Any]:
    """The task's objective on a `resolution` × `resolution` grid over its plotting domain:
    `{"task", "x", "y", "z", "domain", "known_minima"}` with z[i][j] at (x[j], y[i]).

    Raises NotFound for an unknown task and InvalidSpec for options that are not a JSON
    object, fail the task's schema, or describe a task that is not 2-D."""
    cls = TASKS.get(name)
    if cls is None:
        raise NotFound(f"unknown task {name!r}; known: {', '.join(TASKS)}")
    if name not in LANDSCAPES:
        raise InvalidSpec(
            f"task: {name} has no contour map (2-D landscapes: {', '.join(LANDSCAPES)})"
        )
    try:
        fields = json.loads(options)
    except ValueError as error:
        raise InvalidSpec(f"options: not JSON ({error})") from error
    if not isinstance(fields, dict):
        raise InvalidSpec("options: must be a JSON object of the task's fields")
    try:
        config = cls.model_validate({**fields, "name": name})
    except ValidationError as error:
        raise InvalidSpec(validation_message(error, prefix="options")) from error
    if getattr(config, "dim", 2) != 2:
        raise InvalidSpec(f"options.dim: {name} with dim {config.dim} is not 2-D (no contour map)")
    task = config.build(torch.device("cpu"), seed)
    facts = task.describe()
    (x0, x1), (y0, y1) = facts["domain"]
    xs = torch.linspace(x0, x1, resolution, dtype=torch.float64)
    ys = torch.linspace(y0, y1, resolution, dtype=torch.float64)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    zs = task.contour(grid_x, grid_y)
    return {
        "task": name,
        "x": xs.tolist(),
        "y": ys.tolist(),
        "z": zs.double().tolist(),
        "domain": facts["domain"],
        "known_minima": facts["known_minima"],
    }
