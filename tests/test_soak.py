"""The soak run (benchmarks/soak.py): its checks on made-up data, and the quick run itself
against a real server (kill -9 of the server and of a worker, SSE clients, a restart)."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest
from benchmark_scripts import BENCHMARKS, load_benchmark


@pytest.fixture(scope="module")
def soak():
    return load_benchmark("soak")


def _row(event_id: int, kind: str, **fields) -> dict:
    return {"id": event_id, "job_id": "j", "event": {"type": kind, **fields}}


def test_stream_check_finds_gaps_duplicates_disorder_and_strangers(soak):
    stored = [3, 5, 8, 9]
    assert soak.stream_problems([3, 5, 8, 9], stored, complete=True) == []
    assert soak.stream_problems([3, 5], stored, complete=False) == []  # hung up for good
    (gap,) = soak.stream_problems([3, 8, 9], stored, complete=True)
    assert gap.startswith("gap: 1 stored ids never received, [5]")
    assert soak.stream_problems([3, 8], stored, complete=False)[0].startswith("gap")
    assert soak.stream_problems([3, 5, 5, 8, 9], stored, complete=True) == ["duplicate ids [5]"]
    assert soak.stream_problems([3, 8, 5, 9], stored, complete=True) == ["ids out of order at [5]"]
    (stranger,) = soak.stream_problems([3, 5, 8, 9, 12], stored, complete=True)
    assert "1 received ids not stored" in stranger


def test_final_status_check_wants_exactly_one_matching_last_status(soak):
    job = {"status": "succeeded"}
    good = [_row(1, "started"), _row(2, "metrics"), _row(3, "status", status="succeeded")]
    assert soak.final_status_problems(job, good) == []
    assert soak.final_status_problems({"status": "cancelled"}, good[-1:]) == [
        "job status cancelled but final event says succeeded"
    ]
    interrupted = {"status": "interrupted"}
    assert soak.final_status_problems(interrupted, good[:2]) == [
        "0 final status events (job status interrupted)"
    ]
    twice = [*good, _row(4, "status", status="succeeded")]
    assert soak.final_status_problems(job, twice)[0].startswith("2 final status events")
    after = [*good, _row(4, "metrics")]
    assert soak.final_status_problems(job, after) == ["events after its final status: ['metrics']"]
    rerun = [_row(1, "started"), _row(2, "started"), good[-1]]
    assert soak.final_status_problems(job, rerun) == ["2 started events (it ran more than once)"]


def test_snapshot_check_finds_lost_and_changed_jobs(soak):
    record = {"id": "a", "status": "succeeded", "message": ""}
    before = {"a": {"record": record, "events": [_row(1, "status", status="succeeded")]}}
    assert soak.snapshot_problems(before, before) == []
    assert soak.snapshot_problems(before, {}) == [("lost", "job a (succeeded) is gone")]
    changed = {"a": {"record": {**record, "status": "interrupted"}, "events": []}}
    assert [check for check, _ in soak.snapshot_problems(before, changed)] == ["changed"] * 2


def test_processes_outside_the_live_servers_tree_are_orphans(soak):
    def info(pid: int, ppid: int) -> object:
        return soak.ProcessInfo(pid, ppid, "S", 1.0, "python -c spawn_main")

    processes = {p.pid: p for p in (info(10, 1), info(11, 10), info(20, 5), info(21, 20))}
    processes[30] = info(30, 1)  # a worker of a killed server, reparented to init
    outside = soak.outside_tree(processes, root=20)
    assert sorted(p.pid for p in outside) == [10, 11, 30]
    assert soak.outside_tree(processes, root=None) == list(processes.values())


def test_workload_adds_up_and_mixes_jobs_comparisons_and_divergers(soak):
    items = soak.workload(40, random.Random(0))
    assert sum(item.size for item in items) == 40
    assert sum(item.kind == "comparison" for item in items) >= 2
    assert sum(item.body.get("optimizer") == soak.DIVERGING["optimizer"] for item in items) >= 2
    assert [len(part) for part in soak.split(list(range(7)), 3)] == [2, 3, 2]
    assert soak.spread(1, 2) == [0, 1]


def test_bad_flags_are_refused_by_name(soak, capsys):
    for argv in (["--jobs", "2"], ["--timeout", "x"], ["--orphan-grace", "0"]):
        with pytest.raises(SystemExit) as exit_info:
            soak.parse_args(argv)
        assert exit_info.value.code == 2
    assert "--orphan-grace" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_quick_soak_run_finds_no_violations(tmp_path):
    """kill -9 of the server and of a worker under load: nothing lost or changed, one final
    status per job, no orphan worker, gap-free SSE ids (the run exits 1 on any violation)."""
    run = subprocess.run(
        [sys.executable, str(BENCHMARKS / "soak.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["jobs"]["submitted"] == report["jobs"]["listed"] == 20
    assert report["faults"]["counts"]["server kills"] == 1
    assert report["faults"]["counts"]["worker kills"] == 1
    assert report["sse"]["clients"] == report["sse"]["ended"] == 6
    assert report["jobs"]["recorded_before_kills"] > 0
