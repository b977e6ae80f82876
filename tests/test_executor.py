"""LocalExecutor: worker processes, FIFO queueing, cancellation, crashes and bad specs,
and the warm worker pool (workers started ahead of need, one job each, replaced).

The first worker of the test session waits for the fork server to import torch (~3 s), a
spawned one (the GPU tests) imports it itself, so the tests use few processes and tiny
Rosenbrock runs; a "long" job is 10⁶ steps that always gets cancelled.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from hanging_setup import HangingSetupExecutor
from reporting_worker import run_worker_reporting_set_up

from server.api.app import make_executor as executor_for
from server.jobs import executor as executor_module
from server.jobs.executor import LocalExecutor, default_memory_limit_mb, total_memory_mb
from server.jobs.processes import identity
from server.runner import Limits
from server.settings import Settings

pytestmark = pytest.mark.timeout(60)

WAIT = 30.0  # generous: worker start-up on a loaded 2-core machine


def spec(steps: int, optimizer: str = "adam") -> dict[str, Any]:
    return {
        "task": {"name": "rosenbrock"},
        "optimizer": {"name": optimizer},
        "steps": steps,
        "device": "cpu",
    }


LONG = spec(10**6)


class Recorder:
    """Collects callbacks (with arrival times and threads) and lets a test wait on them."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.events: list[tuple[str, dict[str, Any], float]] = []
        self.exits: dict[str, tuple[str | None, float]] = {}
        self.threads: set[str] = set()
        self.double_exits: list[str] = []
        self.launches: dict[str, tuple[int | None, int | None]] = {}

    def on_launch(self, job_id: str, pid: int | None, started: int | None) -> None:
        with self.cond:
            assert job_id not in self.launches and not self.of(job_id)  # before any event
            self.launches[job_id] = (pid, started)
            self.cond.notify_all()

    def on_event(self, job_id: str, event: dict[str, Any]) -> None:
        with self.cond:
            self.events.append((job_id, event, time.monotonic()))
            self.threads.add(threading.current_thread().name)
            self.cond.notify_all()

    def on_exit(self, job_id: str, error: str | None) -> None:
        with self.cond:
            if job_id in self.exits:
                self.double_exits.append(job_id)
            self.exits[job_id] = (error, time.monotonic())
            self.threads.add(threading.current_thread().name)
            self.cond.notify_all()

    def of(self, job_id: str) -> list[dict[str, Any]]:
        with self.cond:
            return [event for jid, event, _ in self.events if jid == job_id]

    def first_event_time(self, job_id: str) -> float:
        with self.cond:
            return min(t for jid, _, t in self.events if jid == job_id)

    def wait_for(self, predicate: Callable[[], bool], what: str) -> None:
        with self.cond:
            assert self.cond.wait_for(predicate, WAIT), f"timed out waiting for {what}"

    def wait_exit(self, job_id: str) -> str | None:
        self.wait_for(lambda: job_id in self.exits, f"{job_id} to exit")
        return self.exits[job_id][0]

    def wait_metrics(self, job_id: str) -> None:
        self.wait_for(
            lambda: any(jid == job_id and e["type"] == "metrics" for jid, e, _ in self.events),
            f"{job_id} to report metrics",
        )


def _our_workers() -> list[multiprocessing.process.BaseProcess]:
    return [p for p in multiprocessing.active_children() if p.name.startswith("job-")]


@pytest.fixture
def make_executor() -> Iterator[Callable[..., tuple[LocalExecutor, Recorder]]]:
    made: list[tuple[LocalExecutor, Recorder]] = []

    def make(
        kind: type[LocalExecutor] = LocalExecutor, **kwargs: Any
    ) -> tuple[LocalExecutor, Recorder]:
        executor, recorder = kind(**kwargs), Recorder()
        executor.start(recorder.on_event, recorder.on_exit, recorder.on_launch)
        made.append((executor, recorder))
        return executor, recorder

    yield make
    for executor, recorder in made:
        executor.shutdown()
        assert not recorder.double_exits, "on_exit called twice for a job"
    assert not _our_workers(), "worker processes left behind"


def _final_statuses(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [event for event in events if event["type"] == "status"]


def test_a_job_runs_to_succeeded_with_its_events_in_order(make_executor) -> None:
    executor, rec = make_executor(concurrency=1)
    executor.submit("a", spec(200))
    assert rec.wait_exit("a") is None
    events = rec.of("a")
    assert events[0]["type"] == "started"
    assert events[0]["total_steps"] == 200
    assert events[-1]["type"] == "status"
    assert events[-1]["status"] == "succeeded", events[-1]["message"]
    assert len(_final_statuses(events)) == 1
    metric_steps = [event["step"] for event in events if event["type"] == "metrics"]
    assert metric_steps == list(range(1, 201))
    steps = [event["step"] for event in events]
    assert steps == sorted(steps)
    assert executor.running() == [] and executor.queued() == []
    assert threading.current_thread().name not in rec.threads  # callbacks: executor thread
    pid, started = rec.launches["a"]
    assert pid is not None and started is not None and pid != os.getpid()


def test_concurrency_one_queues_the_second_job_until_the_first_ends(make_executor) -> None:
    executor, rec = make_executor(concurrency=1)
    executor.submit("first", spec(150))
    executor.submit("second", spec(150))
    assert "second" in executor.queued()
    assert "second" not in executor.running()
    assert rec.wait_exit("first") is None
    assert rec.wait_exit("second") is None
    assert rec.first_event_time("second") >= rec.exits["first"][1]
    for job_id in ("first", "second"):
        assert rec.of(job_id)[-1]["status"] == "succeeded", rec.of(job_id)[-1]["message"]


def test_cancelling_a_running_job_ends_it_within_about_a_second(make_executor) -> None:
    executor, rec = make_executor(concurrency=1)
    executor.submit("long", LONG)
    rec.wait_metrics("long")
    assert executor.running() == ["long"]
    began = time.monotonic()
    assert executor.cancel("long") is True  # returns at once; on_exit follows
    error = rec.wait_exit("long")
    latency = rec.exits["long"][1] - began
    print(f"cancel latency (cancel() → on_exit): {latency * 1000:.1f} ms")
    assert latency < 1.5
    assert error is None  # the worker stopped itself and sent its own final status
    statuses = _final_statuses(rec.of("long"))
    assert [s["status"] for s in statuses] == ["cancelled"]
    assert rec.of("long")[-1] is statuses[0]
    assert executor.cancel("long") is False  # no longer here
    assert executor.cancel("unknown") is False
    assert executor.running() == []


def test_cancelling_a_queued_job_reports_it_cancelled_before_start(make_executor) -> None:
    executor, rec = make_executor(concurrency=1)
    executor.submit("long", LONG)
    executor.submit("waiting", spec(50))
    assert executor.queued()[-1] == "waiting"
    assert executor.cancel("waiting", wait=True) is True
    assert rec.exits["waiting"][0] == "cancelled before start"  # reported before cancel returned
    events = rec.of("waiting")
    assert len(events) == 1
    assert events[0] == {
        "type": "status",
        "status": "cancelled",
        "step": 0,
        "message": "cancelled before start",
        "summary": {},
    }
    assert "waiting" not in executor.queued()
    # Cancelled while its interpreter is still starting (importing torch takes seconds
    # here): terminated after the grace second, and the executor reports the status.
    assert executor.cancel("long") is True
    assert rec.wait_exit("long") in (None, "worker process terminated after a cancel request")
    assert [s["status"] for s in _final_statuses(rec.of("long"))] == ["cancelled"]
    assert executor.running() == [] and executor.queued() == []


def test_a_killed_worker_is_reported_and_the_executor_keeps_working(make_executor) -> None:
    executor, rec = make_executor(concurrency=1)
    executor.submit("doomed", LONG)
    rec.wait_metrics("doomed")
    pid = executor.pid("doomed")
    assert pid is not None and pid != os.getpid()
    assert rec.launches["doomed"] == (pid, identity(pid))  # the worker, named by its start
    os.kill(pid, signal.SIGKILL)
    error = rec.wait_exit("doomed")
    assert error == "worker process exited with code -9 before finishing"
    assert _final_statuses(rec.of("doomed")) == []  # the service writes the failure
    assert executor.pid("doomed") is None
    executor.submit("next", spec(50))
    assert rec.wait_exit("next") is None
    assert rec.of("next")[-1]["status"] == "succeeded"


def test_an_invalid_spec_becomes_a_failed_status_not_an_exception(make_executor) -> None:
    executor, rec = make_executor(concurrency=1)
    executor.submit("bad", {"task": {"name": "rosenbrock"}, "optimizer": {"name": "nope"}})
    assert rec.wait_exit("bad") is None
    events = rec.of("bad")
    assert len(events) == 1
    assert events[0]["type"] == "status"
    assert events[0]["status"] == "failed"
    assert events[0]["message"].startswith("invalid job spec: ")
    assert "'nope'" in events[0]["message"]


def test_submit_and_start_rules_without_running_anything() -> None:
    with pytest.raises(ValueError):
        LocalExecutor(concurrency=0)
    executor = LocalExecutor(concurrency=1)
    executor.submit("a", spec(10))
    with pytest.raises(ValueError):
        executor.submit("a", spec(10))
    assert executor.queued() == ["a"] and executor.running() == []
    assert executor.pid("a") is None
    executor.shutdown()
    executor.shutdown()  # idempotent
    with pytest.raises(RuntimeError):
        executor.submit("b", spec(10))
    with pytest.raises(RuntimeError):
        executor.start(lambda job_id, event: None, lambda job_id, error: None)
    assert not _our_workers()


def test_a_job_hanging_in_set_up_ends_failed_at_the_servers_time_limit(make_executor) -> None:
    executor, rec = make_executor(HangingSetupExecutor, concurrency=1, limits=Limits(max_seconds=2))
    began = time.monotonic()
    executor.submit("stuck", spec(50))
    error = rec.wait_exit("stuck")
    assert error == "time limit of 2 s reached during set-up"
    assert rec.exits["stuck"][1] - began >= 2
    assert [(s["status"], s["message"]) for s in _final_statuses(rec.of("stuck"))] == [
        ("failed", error)
    ]
    assert executor.running() == []


def test_a_jobs_own_time_limit_counts_from_its_launch_too(make_executor) -> None:
    executor, rec = make_executor(HangingSetupExecutor, concurrency=1)
    executor.submit("stuck", {**spec(50), "max_seconds": 1.5})
    assert rec.wait_exit("stuck") == "time limit of 1.5 s reached during set-up"
    assert [s["status"] for s in _final_statuses(rec.of("stuck"))] == ["failed"]


def test_a_worker_killed_by_the_oom_killer_is_reported_as_out_of_memory(
    make_executor, monkeypatch: pytest.MonkeyPatch
) -> None:
    kills = iter(range(100))  # the kernel's count of OOM kills: one more at every look
    monkeypatch.setattr(executor_module, "_oom_kills", lambda: next(kills))
    executor, rec = make_executor(HangingSetupExecutor, concurrency=1)
    executor.submit("victim", spec(50))
    rec.wait_for(lambda: executor.pid("victim") is not None, "a worker")
    os.kill(executor.pid("victim"), signal.SIGKILL)  # as the OOM killer does
    error = rec.wait_exit("victim")
    assert error is not None and error.startswith("worker process exited with code -9")
    assert "out-of-memory killer" in error and "too much memory" in error


#: needs ≈ 16 GB for the LSTM's activations over 512 steps of a 4096-sequence batch
HUGE = {
    **spec(1),
    "task": dict(name="xor", cell="lstm", hidden_size=512, sequence_length=512, batch_size=4096),
}


def test_a_job_over_the_memory_limit_fails_saying_so_and_the_next_runs(make_executor) -> None:
    floor = executor_module.MIN_MEMORY_LIMIT_MB  # the smallest default: normal jobs fit
    executor, rec = make_executor(concurrency=1, memory_limit_mb=floor)
    assert executor.memory_limit_mb == floor
    executor.submit("huge", HUGE)
    executor.submit("normal", spec(30, "psgd-dense"))
    assert rec.wait_exit("huge") is None
    (status,) = _final_statuses(rec.of("huge"))
    assert status["status"] == "failed", status
    prefix = f"out of memory: the job hit this server's per-job memory limit of {floor} MB ("
    assert status["message"].startswith(prefix), status["message"]
    assert rec.wait_exit("normal") is None
    assert rec.of("normal")[-1]["status"] == "succeeded", rec.of("normal")[-1]


def test_the_default_memory_limit_shares_three_quarters_of_memory_among_the_jobs() -> None:
    assert default_memory_limit_mb(4, total_mb=16_000) == 3000
    assert default_memory_limit_mb(1, total_mb=16_000) == 12_000
    assert default_memory_limit_mb(32, total_mb=16_000) == executor_module.MIN_MEMORY_LIMIT_MB
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    assert 0 < total_memory_mb() <= physical
    assert _limit_of(concurrency=2) == default_memory_limit_mb(2)
    assert _limit_of(concurrency=2, memory_limit_mb=500) == 500
    assert _limit_of(concurrency=2, memory_limit_mb=0) is None  # no limit
    with pytest.raises(ValueError, match="memory_limit_mb"):
        LocalExecutor(concurrency=2, memory_limit_mb=-1)
    assert Settings(memory_limit_mb=0).memory_limit_mb == 0


def _limit_of(**kwargs: Any) -> int | None:
    executor = LocalExecutor(**kwargs)
    executor.shutdown()
    return executor.memory_limit_mb


# ---- the warm worker pool ------------------------------------------------------------------


class ReportingExecutor(LocalExecutor):
    """Its jobs' `started` events tell how their worker process was set up."""

    worker_main = staticmethod(run_worker_reporting_set_up)


#: jobs that draw random numbers (PSGD's probe vectors; XOR's data and weights too): same
#: seed, same losses, whichever worker runs them
PROBED = {**spec(12, "psgd-dense"), "seed": 3}
RANDOM = {**spec(12, "psgd-lra"), "task": {"name": "xor", "sequence_length": 8}, "seed": 3}


def idle_workers(executor: LocalExecutor, count: int, not_in: Iterable[int] = ()) -> list[int]:
    """Wait until `count` warm workers, none of them in `not_in`, are idle; their pids."""
    pids: list[int] = []

    def found() -> bool:
        pids[:] = executor.idle_workers()
        return len(pids) == count and not set(pids) & set(not_in)

    until(found, f"{count} idle worker(s)")
    return pids


def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def process_of(rec: Recorder, job_id: str) -> dict[str, Any]:
    return rec.of(job_id)[0]["meta"]["process"]


def losses(rec: Recorder, job_id: str) -> list[float]:
    return [event["loss"] for event in rec.of(job_id) if event["type"] == "metrics"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork server on Linux only")
def test_a_job_runs_in_a_worker_started_before_it_which_runs_no_other(
    make_executor, monkeypatch: pytest.MonkeyPatch
) -> None:
    executor, rec = make_executor(
        ReportingExecutor, concurrency=1, memory_limit_mb=3000, threads_per_job=2
    )
    assert executor.pool_size == 1  # the default: one idle worker per slot
    (warm,) = idle_workers(executor, 1)
    monkeypatch.setenv("PSGD_TEST_PROBE", "set after the worker started")
    executor.submit("a", PROBED)
    assert rec.wait_exit("a") is None and rec.of("a")[-1]["status"] == "succeeded"
    assert rec.launches["a"][0] == warm
    # the job's own settings and the server's environment at its launch, applied when it
    # arrived in the warmed-up worker; torch came with the worker (from its fork server)
    assert process_of(rec, "a") == {
        "pid": warm,
        "threads": 2,
        "gpu": None,
        "memory_limit_mb": 3000,
        "torch_preloaded": True,
        "probe": "set after the worker started",
    }
    (replacement,) = idle_workers(executor, 1, not_in=[warm])
    until(lambda: identity(warm) is None, "the used worker to exit")  # never reused
    executor.submit("b", PROBED)
    assert rec.wait_exit("b") is None
    assert rec.launches["b"][0] == replacement
    assert process_of(rec, "b")["torch_preloaded"]  # the replacement did not import torch
    assert losses(rec, "b") == losses(rec, "a") and len(losses(rec, "a")) == 12


def test_without_a_pool_each_job_starts_a_worker_and_gets_the_same_results(
    make_executor,
) -> None:
    executor, rec = make_executor(concurrency=1, pool_size=0)
    executor.submit("cold", RANDOM)
    assert rec.wait_exit("cold") is None and rec.of("cold")[-1]["status"] == "succeeded"
    assert executor.idle_workers() == []
    warm_executor, warm_rec = make_executor(concurrency=1)
    idle_workers(warm_executor, 1)
    warm_executor.submit("warm", RANDOM)
    assert warm_rec.wait_exit("warm") is None
    assert losses(warm_rec, "warm") == losses(rec, "cold") and len(losses(rec, "cold")) == 12


def test_an_idle_worker_that_dies_is_replaced_and_jobs_still_run(make_executor) -> None:
    executor, rec = make_executor(concurrency=1)
    (first,) = idle_workers(executor, 1)
    os.kill(first, signal.SIGKILL)  # a crash or the OOM killer, while it waits for a job
    (second,) = idle_workers(executor, 1, not_in=[first])
    executor.submit("next", spec(20))
    assert rec.wait_exit("next") is None and rec.of("next")[-1]["status"] == "succeeded"
    assert rec.launches["next"][0] == second


def test_warm_workers_are_pinned_to_the_gpu_their_job_gets(
    make_executor, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two pretend GPUs (the jobs run on the CPU): CUDA_VISIBLE_DEVICES is set in each
    # worker before torch loads, so the pool keeps one idle worker per GPU.
    monkeypatch.setattr(executor_module, "_visible_gpus", lambda: ["0", "1"])
    executor, rec = make_executor(ReportingExecutor, concurrency=2)
    warm = idle_workers(executor, 2)
    executor.submit("long", LONG)  # on GPU 0, the least busy
    rec.wait_metrics("long")
    executor.submit("short", spec(20))  # on GPU 1: GPU 0 is busy
    assert rec.wait_exit("short") is None
    assert process_of(rec, "long")["gpu"] == "0" and process_of(rec, "short")["gpu"] == "1"
    assert {rec.launches["long"][0], rec.launches["short"][0]} == set(warm)
    executor.cancel("long", wait=True)


def test_pool_size_and_threads_per_job_come_from_the_settings() -> None:
    assert (_made(), _made(concurrency=3)) == ((1, 1), (3, 1))  # pool: concurrency; 1 thread
    assert _made(concurrency=2, pool_size=0, threads_per_job=4) == (0, 4)
    for wrong in ({"pool_size": -1}, {"threads_per_job": 0}):
        with pytest.raises(ValueError, match=next(iter(wrong))):
            LocalExecutor(concurrency=1, **wrong)
        with pytest.raises(ValueError, match=next(iter(wrong))):
            Settings(**wrong)


def _made(**settings: Any) -> tuple[int, int]:
    """(pool_size, threads_per_job) of the executor the server makes from these settings."""
    executor = executor_for(Settings(**{"concurrency": 1, **settings}))
    executor.shutdown()  # never started: no worker was
    assert isinstance(executor, LocalExecutor)
    return executor.pool_size, executor.threads_per_job
