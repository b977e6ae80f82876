"""A 2-D landscape sampled on a grid: the background of trajectory plots.

Clients draw paths over it without importing the task code, so a UI pointed at a remote
server still gets the map. Only the 2-D landscapes have one. This module checks the
request; `server.tasks.contours` samples the map (the CLI's plots use it too).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from server.errors import InvalidSpec, NotFound, validation_message
from server.tasks import TASKS
from server.tasks.contours import sample_contour
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
        message = validation_message(error.errors(), prefix="options", model=cls)
        raise InvalidSpec(message) from error
    if getattr(config, "dim", 2) != 2:
        raise InvalidSpec(f"options.dim: {name} with dim {config.dim} is not 2-D (no contour map)")
    contour = sample_contour(config, seed, resolution)
    if contour is None:  # every 2-D landscape has one: a task that lost it is a server bug
        raise RuntimeError(f"task {name} gave no contour map")
    return {"task": name, **contour}
