"""Loading a script of benchmarks/ as a module, for the tests of its functions."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """`benchmarks/<name>.py` imported as the module `name` (registered in sys.modules, so
    that dataclasses and pickling inside it find their module)."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def assert_kept_runs_give_the_same_report(suite: str, report_folder: Path) -> None:
    """`benchmarks/suite.py --from` on the report's kept runs must rebuild its report: the
    suite's `analysed_events` and `analysed_fields` hold everything its analysis reads."""
    import json

    again = report_folder.with_name(report_folder.name + "-again")
    command = load_benchmark("suite")
    assert command.main([suite, "--from", str(report_folder), "--out", str(again)]) == 0
    made, analysed = (json.loads((f / "report.json").read_text()) for f in (report_folder, again))
    assert analysed["report"] == made["report"]
