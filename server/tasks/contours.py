"""A 2-D landscape's objective sampled on a grid: the background of trajectory plots.

The one sampler behind the API's `GET /api/tasks/{name}/contour` (which the UI draws,
also against a remote server) and the CLI's trajectory plot. The task is built on the CPU
with the job's options and seed (a rotated quadratic depends on the seed), and sampled
with the formula the optimizer sees (`LandscapeTask.contour`).
"""

from __future__ import annotations

from typing import Any

import torch

from server.tasks.base import TaskConfig

#: grid points per axis unless asked otherwise
DEFAULT_RESOLUTION = 81


def sample_contour(
    config: TaskConfig, seed: int, resolution: int = DEFAULT_RESOLUTION
) -> dict[str, Any] | None:
    """`{"x", "y", "z", "domain", "known_minima"}` with z[i][j] the objective at
    (x[j], y[i]) on a `resolution` × `resolution` grid over the task's plotting domain;
    None for a task without one (not a 2-D landscape)."""
    task = config.build(torch.device("cpu"), seed)
    facts = task.describe()
    contour = getattr(task, "contour", None)
    if contour is None or not facts.get("domain"):
        return None
    (x0, x1), (y0, y1) = facts["domain"]
    xs = torch.linspace(x0, x1, resolution, dtype=torch.float64)
    ys = torch.linspace(y0, y1, resolution, dtype=torch.float64)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    zs = contour(grid_x, grid_y)
    if zs is None:
        return None
    return {
        "x": xs.tolist(),
        "y": ys.tolist(),
        "z": zs.double().tolist(),
        "domain": facts["domain"],
        "known_minima": facts.get("known_minima", []),
    }
