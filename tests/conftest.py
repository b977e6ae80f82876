"""Shared test setup."""

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
