"""What the server offers: its tasks with their optimizer presets and whether each can run
here now. One place for the API's `/tasks` (and through it the UI and clients)."""

from __future__ import annotations

from typing import Any

from server import optimizers, tasks
from server.tasks import cifar


def task_entries() -> list[dict[str, Any]]:
    """The task catalogue, each entry with its presets and `ready` / `not_ready_reason`."""
    entries = []
    for entry in tasks.catalogue():
        reason = not_ready_reason(entry["name"])
        entries.append(
            {
                **entry,
                "presets": optimizers.TASK_PRESETS.get(entry["name"], {}),
                "ready": reason is None,
                "not_ready_reason": reason,
            }
        )
    return entries


def not_ready_reason(task: str) -> str | None:
    """Why `task` cannot run with its default options on this server now, else None: the
    task module's own check (CIFAR-10: is the default dataset in the data folders; its
    message names the folders' variables and the download command, never a server path)."""
    if task != "cifar10":
        return None
    try:
        cifar.locate_dataset(None)
    except FileNotFoundError as error:
        return str(error)
    return None
