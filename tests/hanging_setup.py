"""An executor and a server whose jobs' set-up never ends (see hanging_worker.py).

uvicorn --factory hanging_setup:hanging_app --app-dir tests   # settings from the environment
"""

from __future__ import annotations

from fastapi import FastAPI
from hanging_worker import run_worker_hanging_in_setup

from server.api import create_app
from server.jobs.executor import LocalExecutor
from server.runner import Limits
from server.settings import Settings


class HangingSetupExecutor(LocalExecutor):
    worker_main = staticmethod(run_worker_hanging_in_setup)


def hanging_app() -> FastAPI:
    """The API running jobs one at a time, each hanging in its set-up."""
    settings = Settings()
    limits = Limits(max_steps=settings.max_steps, max_seconds=settings.max_seconds)
    return create_app(settings, executor=HangingSetupExecutor(concurrency=1, limits=limits))
