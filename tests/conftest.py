"""Shared test setup."""

import os
from typing import Any

import pytest
import torch

# The math tests loop over tiny tensors, where extra threads only add overhead and make
# timings on a shared 2-core machine erratic.
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` need CUDA; skip them, with the reason shown, without it."""
    if torch.cuda.is_available():
        return
    import pytest

    skip = pytest.mark.skip(reason="needs a CUDA device (none visible to torch)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep the call-phase report on the item, so fixtures (the browser page) see a failure.

    Why here: pytest loads hooks from conftest files and plugins, not from test modules.
    """
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.rep_call = report


#: the base URL of in-process API clients: a loopback Host, as clients of a default server
#: send (TestClient's own, testserver, is not a trusted host)
API_BASE_URL = "http://127.0.0.1:8000"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No PSGD_PLAYGROUND_* variable of the caller's shell reaches Settings()."""
    for name in list(os.environ):
        if name.startswith("PSGD_PLAYGROUND_"):
            monkeypatch.delenv(name)


@pytest.fixture
def make_client(tmp_path, clean_env):
    """make_client(executor=None, raise_errors=True, **settings) -> a started TestClient of
    the API over a FakeExecutor (`.executor`)."""
    from fake_executor import FakeExecutor
    from fastapi.testclient import TestClient

    from server.api import create_app
    from server.settings import Settings

    clients: list[TestClient] = []

    def make(executor: Any = None, raise_errors: bool = True, **overrides: Any) -> TestClient:
        settings = Settings(**{"data_dir": tmp_path / "data", **overrides})
        executor = executor or FakeExecutor()
        client = TestClient(
            create_app(settings, executor=executor),
            base_url=API_BASE_URL,
            raise_server_exceptions=raise_errors,
        )
        client.__enter__()
        client.executor = executor  # type: ignore[attr-defined]
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)
