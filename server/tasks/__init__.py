"""The task zoo: every task config, one discriminated union, and a catalogue.

A task spec is `{"name": ..., **fields}`; `task_config(spec)` validates it (pydantic's
ValidationError names the bad field).
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter

from server.tasks.base import Task, TaskConfig
from server.tasks.cifar import CIFAR_CONFIGS
from server.tasks.landscapes import LANDSCAPE_CONFIGS
from server.tasks.xor import XOR_CONFIGS

TASK_CONFIGS: tuple[type[TaskConfig], ...] = (*LANDSCAPE_CONFIGS, *XOR_CONFIGS, *CIFAR_CONFIGS)
TASKS: dict[str, type[TaskConfig]] = {cls.model_fields["name"].default: cls for cls in TASK_CONFIGS}
AnyTaskConfig = Annotated[Union[TASK_CONFIGS], Field(discriminator="name")]  # noqa: UP007
_ADAPTER: TypeAdapter[Any] = TypeAdapter(AnyTaskConfig)


def task_config(spec: dict[str, Any] | TaskConfig) -> TaskConfig:
    """Validate a task spec `{"name": ..., **fields}`."""
    return spec if isinstance(spec, TaskConfig) else _ADAPTER.validate_python(spec)


def description(cls: type[TaskConfig]) -> str:
    """The config's whole docstring as one line: the first line alone stopped mid-sentence."""
    return " ".join((cls.__doc__ or "").split())


def catalogue() -> list[dict[str, Any]]:
    """Every task with its description and JSON schema (for forms and `--help`)."""
    return [
        {
            "name": name,
            "description": description(cls),
            "schema": cls.model_json_schema(),
        }
        for name, cls in TASKS.items()
    ]


__all__ = [
    "TASKS",
    "TASK_CONFIGS",
    "AnyTaskConfig",
    "Task",
    "TaskConfig",
    "catalogue",
    "description",
    "task_config",
]
