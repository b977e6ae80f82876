"""The UI first-points benchmark script: its flags, its quantiles, and one round in headless
Chromium against a real server (a smoke test that it reports a number, not a timing test)."""

from __future__ import annotations

import json
import math
import os

import pytest
from benchmark_scripts import load_benchmark


@pytest.fixture(scope="module")
def ui_first_points():
    return load_benchmark("ui_first_points")


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--rounds", "0"], "--rounds"),
        (["--timeout", "0"], "--timeout"),
        (["--warmup", "-1"], "--warmup"),
        (["--preset", "Delayed XOR (T=32)"], "--preset"),  # not a landscape
        (["--preset", "nope"], "--preset"),
    ],
)
def test_bad_flags_are_named(ui_first_points, flags, named, capsys):
    with pytest.raises(SystemExit) as exit_info:
        ui_first_points.parse_args(flags)
    assert exit_info.value.code == 2
    assert named in capsys.readouterr().err


def test_quantiles_are_measured_values_by_nearest_rank(ui_first_points):
    percentile = ui_first_points.percentile
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert percentile([float(i) for i in range(1, 11)], 0.9) == 9.0
    assert percentile([0.7], 0.9) == 0.7


# slow: a server and a browser of its own for one number (≈ 28 s); the flags and quantiles
# above stay in `make test`, `make test-all` runs this too
@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.timeout(240)
def test_one_round_reports_the_seconds_to_the_first_points(ui_first_points, tmp_path):
    chromium = ui_first_points.CHROMIUM
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reason = "playwright is not installed (pip install playwright)"
    else:
        reason = None if os.access(chromium, os.X_OK) else f"no Chromium at {chromium}"
    if reason is not None:
        if os.environ.get("CI_REQUIRE_BROWSER") == "1":
            pytest.fail(f"CI_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    result = ui_first_points.main(["--rounds", "1", "--warmup", "0", "--out", str(tmp_path)])
    (seconds,) = result["seconds"]
    assert math.isfinite(seconds) and seconds > 0
    assert result["p50"] == result["p90"] == seconds
    (stages,) = result["stages"]
    assert stages["first_points"] == seconds
    stage_keys = ("comparison_stored", "first_job_started", "loss_handed_to_plotly")
    assert all(math.isfinite(stages[key]) for key in stage_keys)
    assert stages["loss_handed_to_plotly"] <= seconds
    written = json.loads((tmp_path / "ui_first_points.json").read_text())
    assert written == json.loads(json.dumps(result))
