"""The benchmark suites that settle the seed paper's claims (issue 16), by name.

Each module named in `SUITE_MODULES` defines one `SUITE` (`server.suites.base.Suite`).
"""

from __future__ import annotations

from importlib import import_module

from server.suites.base import Suite

#: the suites' modules, in the order the README's claim table and the Benchmarks tab list them
SUITE_MODULES: tuple[str, ...] = ("xor", "fitting", "cifar", "flatness", "step_cost")


def _load() -> dict[str, Suite]:
    suites = [import_module(f"server.suites.{module}").SUITE for module in SUITE_MODULES]
    return {suite.name: suite for suite in suites}


SUITES: dict[str, Suite] = _load()


def suite_named(name: str) -> Suite:
    """The suite called `name`; KeyError with the valid names otherwise."""
    try:
        return SUITES[name]
    except KeyError:
        raise KeyError(f"unknown suite {name!r} (valid: {', '.join(SUITES) or 'none'})") from None
