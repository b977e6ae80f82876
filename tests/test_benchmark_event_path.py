"""The event-path benchmark script: its flags, and one short job through the real executor,
service, store, broker and SSE stream (a smoke test that it counts and reports, not a timing
test)."""

from __future__ import annotations

import json

import pytest
from benchmark_scripts import load_benchmark

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def event_path():
    return load_benchmark("event_path")


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--events", "0"], "--events"),
        (["--pace", "-1"], "--pace"),
        (["--rounds", "0"], "--rounds"),
    ],
)
def test_bad_flags_are_named(event_path, flags, named, capsys):
    with pytest.raises(SystemExit) as exit_info:
        event_path.parse_args(flags)
    assert exit_info.value.code == 2
    assert named in capsys.readouterr().err


def test_one_job_streams_every_event_and_reports_its_cpu_seconds(event_path, tmp_path):
    result = event_path.main(
        ["--events", "50", "--pace", "0", "--rounds", "1", "--out", str(tmp_path)]
    )
    (job,) = result["jobs"]
    assert job["events"] == 52  # started, 50 metrics, the final status
    assert 0 < job["cpu_s"] <= job["wall_s"] * 4 and result["cpu_s_median"] == job["cpu_s"]
    written = json.loads((tmp_path / "event_path.json").read_text())
    assert written == json.loads(json.dumps(result))
