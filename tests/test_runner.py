"""The optimizer registry and the job runner on toy tasks."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest
import torch
from pydantic import ValidationError

from server.cadence import Cadence
from server.events import Evaluation, Metrics, Spectrum, Started, Status, Trajectory
from server.optimizers import REGISTRY, TASK_PRESETS, catalogue, optimizer_config
from server.runner import SKETCH_DIM, Limits, run_job
from server.specs import ComparisonSpec, JobSpec, expand


def _run(spec: dict, **kwargs: object) -> tuple[list, Status]:
    events: list = []
    status = run_job(JobSpec.model_validate(spec), events.append, **kwargs)
    return events, status


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_registry_entry_runs_five_steps_on_a_toy_task(name: str) -> None:
    events, status = _run(
        {"task": {"name": "rosenbrock"}, "optimizer": {"name": name}, "steps": 5, "device": "cpu"}
    )
    assert status.status == "succeeded", status.message
    losses = [e.loss for e in events if isinstance(e, Metrics)]
    assert len(losses) == 5
    assert all(math.isfinite(x) for x in losses)


def test_every_schema_field_has_a_default_and_a_description() -> None:
    for entry in catalogue():
        properties = entry["schema"]["properties"]
        for field, schema in properties.items():
            if field == "name":
                continue
            assert "default" in schema, (entry["name"], field)
            assert schema.get("description"), (entry["name"], field)


def test_task_preset_fills_unspecified_hyperparameters_and_user_values_win() -> None:
    config = optimizer_config({"name": "psgd-lra"}, "xor")
    assert config.preconditioner_init_scale == 1.0
    assert config.fitting == "newton"
    assert config.step_kind == "newton"
    config = optimizer_config({"name": "psgd-lra", "lr": 0.05}, "xor")
    assert config.lr == 0.05
    assert optimizer_config({"name": "psgd-lra"}).fitting == "whiten"
    assert set(TASK_PRESETS["rosenbrock"]) <= set(REGISTRY)


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "adam", "lr": -1},
        {"name": "adam", "bogus": 1},
        {"name": "nope"},
        {"name": "psgd-kron", "preconditioner_lr": 5},
        {"name": "psgd-lra", "rank": -1},
    ],
)
def test_invalid_optimizer_specs_are_rejected(spec: dict) -> None:
    with pytest.raises(ValidationError):
        optimizer_config(spec, "rosenbrock")


def test_event_sequence_is_started_then_steps_then_one_final_status() -> None:
    events, status = _run(
        {
            "task": {"name": "rosenbrock"},
            "optimizer": {"name": "psgd-dense"},
            "steps": 20,
            "snapshot_every": 5,
            "device": "cpu",
        }
    )
    assert isinstance(events[0], Started)
    assert events[-1] is status and status.status == "succeeded"
    assert [e for e in events if isinstance(e, Status)] == [status]
    meta = events[0].meta
    assert meta["environment"]["seed"] == 0 and "torch" in meta["environment"]
    assert [e.step for e in events if isinstance(e, Metrics)] == list(range(1, 21))
    spectra = [e for e in events if isinstance(e, Spectrum)]
    assert [e.step for e in spectra] == [0, 5, 10, 15, 20]
    assert spectra[-1].spectra["all"] and len(spectra[-1].inverse_hessian) == 2
    points = [e for e in events if isinstance(e, Trajectory)]
    assert all(len(e.point) == 2 for e in points)
    assert status.summary["steps"] == 20
    assert status.summary["best_loss"] <= status.summary["final_loss"] + 1e-12


def test_dense_newton_preconditioner_tracks_the_inverse_absolute_hessian() -> None:
    events, _ = _run(
        {
            "task": {"name": "quadratic", "dim": 4, "condition_number": 10, "dtype": "float64"},
            "optimizer": {"name": "psgd-dense"},
            "steps": 300,
            "device": "cpu",
        }
    )
    last = [e for e in events if isinstance(e, Spectrum)][-1]
    fitted, exact = last.spectra["all"], last.inverse_hessian
    assert all(abs(f / e - 1) < 0.25 for f, e in zip(fitted, exact)), (fitted, exact)


def test_runs_are_deterministic_for_a_seed() -> None:
    spec = {
        "task": {"name": "quadratic", "dim": 6, "noise": 0.1},
        "optimizer": {"name": "psgd-kron", "fitting": "whiten", "lr": 0.01},
        "steps": 30,
        "seed": 3,
        "device": "cpu",
    }
    first = [e.loss for e in _run(spec)[0] if isinstance(e, Metrics)]
    second = [e.loss for e in _run(spec)[0] if isinstance(e, Metrics)]
    other = [e.loss for e in _run({**spec, "seed": 4})[0] if isinstance(e, Metrics)]
    assert first == second
    assert first != other


def test_diverging_run_ends_as_diverged_with_the_step() -> None:
    _, status = _run(
        {
            "task": {"name": "quadratic", "dim": 4, "condition_number": 100},
            "optimizer": {"name": "sgd", "lr": 10.0},
            "steps": 200,
            "device": "cpu",
        }
    )
    assert status.status == "diverged"
    assert 0 < status.step < 200
    assert str(status.step) in status.message


def test_cancellation_is_checked_between_steps() -> None:
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    events, status = _run(
        {"task": {"name": "rosenbrock"}, "optimizer": {"name": "adam"}, "steps": 100},
        should_stop=stop,
    )
    assert status.status == "cancelled"
    assert status.step == 3
    assert len([e for e in events if isinstance(e, Metrics)]) == 3


def test_limits_end_runaway_jobs_as_failed() -> None:
    _, status = _run(
        {"task": {"name": "rosenbrock"}, "optimizer": {"name": "adam"}, "steps": 100},
        limits=Limits(max_steps=50),
    )
    assert status.status == "failed" and "limit" in status.message
    _, status = _run(
        {"task": {"name": "rosenbrock"}, "optimizer": {"name": "adam"}, "steps": 10**6},
        limits=Limits(max_seconds=0.2),
    )
    assert status.status == "failed" and "time limit" in status.message
    assert status.step > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_job_errors_become_failed_status_not_exceptions() -> None:
    _, status = _run(
        {"task": {"name": "rosenbrock"}, "optimizer": {"name": "adam"}, "device": "cuda"}
    )
    assert status.status == "failed" and "CUDA" in status.message


def test_time_to_target_is_the_first_step_reaching_it() -> None:
    events, status = _run(
        {
            "task": {"name": "rosenbrock"},
            "optimizer": {"name": "psgd-dense"},
            "steps": 300,
            "target": 1e-3,
        }
    )
    losses = [e.loss for e in events if isinstance(e, Metrics)]
    first = next(i + 1 for i, loss in enumerate(losses) if loss <= 1e-3)
    assert status.summary["target_step"] == first
    assert status.summary["target_seconds"] > 0


def test_stop_when_solved_ends_the_job_at_the_target_step_observed() -> None:
    spec = {"task": {"name": "rosenbrock"}, "optimizer": {"name": "psgd-dense"}, "steps": 300,
            "target": 1e-3}  # fmt: skip
    _, full = _run(spec)
    events, status = _run({**spec, "stop_when_solved": True})
    first = full.summary["target_step"]
    assert 0 < first < 300
    assert status.status == "succeeded" and status.step == first
    assert status.message == f"target reached at step {first}"
    assert [e.step for e in events if isinstance(e, Metrics)][-1] == first
    assert any(isinstance(e, Spectrum) and e.step == first for e in events)  # observed
    assert any(isinstance(e, Trajectory) and e.step == first for e in events)
    assert status.summary["steps"] == first and status.summary["target_step"] == first


def test_stop_when_solved_uses_the_tasks_criterion_without_a_target() -> None:
    spec = {
        "task": {"name": "xor", "sequence_length": 4, "batch_size": 32},
        "optimizer": {"name": "adam", "lr": 0.02},
        "steps": 3000,
        "snapshot_every": 500,
    }
    events, status = _run({**spec, "stop_when_solved": True})
    solved = status.summary["solved_step"]
    assert solved is not None and status.step == solved < 3000
    assert status.message == f"solved at step {solved}"
    assert any(isinstance(e, Evaluation) and e.step == solved for e in events)
    _, unstopped = _run({**spec, "steps": solved + 5})
    assert unstopped.summary["solved_step"] == solved and unstopped.step == solved + 5


def _sketches(spec: dict) -> list[Trajectory]:
    return [e for e in _run(spec)[0] if isinstance(e, Trajectory)]


def test_high_dimensional_tasks_send_one_bounded_sketch_point_per_snapshot() -> None:
    base = {"optimizer": {"name": "adam"}, "steps": 40, "snapshot_every": 10, "device": "cpu"}
    small = _sketches({**base, "task": {"name": "rosenbrock", "dim": 10}})
    assert [e.step for e in small] == [0, 10, 20, 30, 40]
    assert all(e.path is None and e.point is None for e in small)
    assert small[0].sketch == [0.0] * 10  # ≤ 64 parameters: the parameters themselves
    big = _sketches({**base, "task": {"name": "quadratic", "dim": 500}})
    assert all(len(e.sketch) == SKETCH_DIM for e in big)  # bounded, whatever the size
    start = torch.ones(500, dtype=torch.float64)  # the quadratic's default start
    assert sum(v * v for v in big[0].sketch) == pytest.approx(float(start @ start), rel=0.5)


def test_runs_from_the_same_start_get_identical_first_sketch_points() -> None:
    """The projection is seeded by a constant, not the job's seed: two runs of different
    optimizers and seeds from one start (not the zero vector) send one same first point."""
    task = {"name": "rosenbrock", "dim": 100, "start": [0.1 * (i % 7) for i in range(100)]}
    runs = [
        _sketches({"task": task, "optimizer": opt, "seed": seed, "steps": 5, "device": "cpu"})
        for opt, seed in (({"name": "adam"}, 0), ({"name": "sgd", "lr": 1e-4}, 3))
    ]
    first, second = (r[0].sketch for r in runs)
    assert len(first) == SKETCH_DIM and any(first)
    assert first == second
    assert runs[0][-1].sketch != runs[1][-1].sketch  # they part afterwards


def test_xor_task_reports_evaluation_and_solved_step() -> None:
    events, status = _run(
        {
            "task": {"name": "xor", "sequence_length": 8, "batch_size": 32},
            "optimizer": {"name": "adam", "lr": 0.01},
            "steps": 20,
            "snapshot_every": 10,
        }
    )
    assert status.status == "succeeded"
    assert any(isinstance(e, Evaluation) for e in events)
    assert "solved_step" in status.summary


def test_comparison_expands_optimizers_times_seeds() -> None:
    comparison = ComparisonSpec(
        task={"name": "rosenbrock"},
        optimizers=[{"name": "psgd-dense"}, {"name": "adam", "lr": 0.02}],
        seeds=[0, 1, 2],
        steps=10,
    )
    jobs = [job.spec for job in expand(comparison)]
    assert [(j.optimizer.name, j.seed) for j in jobs] == [
        (name, seed) for name in ("psgd-dense", "adam") for seed in (0, 1, 2)
    ]
    assert jobs[0].optimizer.fitting == "newton"  # the task preset applied
    assert jobs[3].optimizer.lr == 0.02


# ------------------------------------------------------- observation cost budget
def test_cadence_spaces_an_observation_by_its_cost_share_and_keeps_the_last_step() -> None:
    cadence = Cadence(total=1000, share=0.02)
    assert cadence.min_gap == 10
    cadence.record(0, seconds=0.001)  # cheap: the ≈ 1 % floor decides
    assert cadence.gap(mean_step_seconds=0.01) == 10
    assert not cadence.due(9, 0.01) and cadence.due(10, 0.01)
    cadence.record(10, seconds=0.1)  # 10 steps' worth: 2 % allows one per 500 steps
    assert cadence.gap(mean_step_seconds=0.01) == 500
    assert not cadence.due(509, 0.01) and cadence.due(510, 0.01)
    cadence.record(510, seconds=10.0)  # dearer than the whole job: only the last step
    assert not cadence.due(999, 0.01) and cadence.due(1000, 0.01)
    assert cadence.report() == {"count": 3, "seconds": pytest.approx(10.101)}


def test_an_explicit_snapshot_every_wins_over_the_measured_spacing() -> None:
    cadence = Cadence(total=100, share=0.02, every=7)
    cadence.record(0, seconds=100.0)
    assert [s for s in range(1, 101) if cadence.due(s, 0.001)] == [*range(7, 99, 7), 100]


def test_default_snapshots_and_evaluations_include_first_and_last_and_report_their_cost() -> None:
    events, status = _run(
        {
            "task": {"name": "xor", "sequence_length": 8, "batch_size": 32},
            "optimizer": {"name": "adam", "lr": 0.01},
            "steps": 40,
        }
    )
    points = [e.step for e in events if isinstance(e, Trajectory)]
    evaluations = [e.step for e in events if isinstance(e, Evaluation)]
    assert points[0] == 0 and points[-1] == 40 and evaluations[-1] == 40
    overhead = status.summary["overhead"]
    # the step-0 point is part of the set-up: the totals are shares of the run's seconds
    assert overhead["trajectories"]["count"] == len(points) - 1
    assert overhead["evaluations"]["count"] == len(evaluations)
    # Adam on XOR has no preconditioner and no small Hessian: no spectrum to observe
    assert overhead["snapshots"]["count"] == 0
    assert overhead["trajectories"]["seconds"] > 0 and overhead["evaluations"]["seconds"] > 0
    observed = sum(overhead[k]["seconds"] for k in ("trajectories", "evaluations"))
    assert 0 < overhead["step_seconds"] + observed < status.summary["seconds"]


def _jumping_clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Give the runner a clock that runs `offset[0]` seconds ahead of the real one."""
    import server.runner as runner

    offset = [0.0]

    class Clock:
        @staticmethod
        def perf_counter() -> float:
            return time.perf_counter() + offset[0]

    monkeypatch.setattr(runner, "time", Clock)
    return offset


def test_set_up_time_is_reported_apart_from_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building the task and optimizer (seconds of lazy imports on a fresh worker) is not
    run time: a clock that jumps 1000 s during set-up leaves the run's times untouched."""
    import server.runner as runner

    offset = _jumping_clock(monkeypatch)

    def slow_build(device: str) -> torch.device:
        offset[0] += 1000.0
        return torch.device("cpu")

    monkeypatch.setattr(runner, "resolve_device", slow_build)
    events, status = _run(
        {
            "task": {"name": "rosenbrock"},
            "optimizer": {"name": "psgd-dense"},
            "steps": 300,
            "target": 1e-3,
        }
    )
    summary = status.summary
    assert summary["setup_seconds"] >= 1000
    assert summary["target_step"] is not None and 0 < summary["target_seconds"] < 1000
    assert 0 < summary["seconds"] < 1000
    elapsed = [e.elapsed for e in events if isinstance(e, Metrics)]
    assert elapsed == sorted(elapsed) and 0 < elapsed[0] < elapsed[-1] <= summary["seconds"]


def test_a_slow_step_0_snapshot_does_not_push_the_next_past_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The step-0 snapshot often pays a process's one-time costs; under load, spacing by
    its cost left a short run with no snapshot but the last (a one-point P curve)."""
    import server.runner as runner

    offset = _jumping_clock(monkeypatch)
    snapshot = runner._spectrum_snapshot

    def first_is_slow(run, task, opt, step: int) -> bool:  # the runner's, slower
        offset[0] += 1000.0 if step == 0 else 0.0
        return snapshot(run, task, opt, step)

    monkeypatch.setattr(runner, "_spectrum_snapshot", first_is_slow)
    events, status = _run({"task": {"name": "rosenbrock"}, "optimizer": {"name": "adam"},
                           "steps": 200})  # fmt: skip
    steps = [e.step for e in events if isinstance(e, Spectrum)]
    assert steps[:2] == [0, 2]  # the ≈ 1 % floor: 200 // 100
    assert status.summary["setup_seconds"] >= 1000 and status.summary["seconds"] < 1000


def test_a_job_that_fails_in_set_up_reports_set_up_time_and_no_run_time() -> None:
    _, status = _run(
        {"task": {"name": "rosenbrock"}, "optimizer": {"name": "adam"}, "steps": 10},
        limits=Limits(max_steps=5),
    )
    assert status.status == "failed"
    assert status.summary["seconds"] == 0.0 and status.summary["setup_seconds"] > 0


def test_metrics_grad_norm_is_the_norm_of_all_gradients() -> None:
    spec = {"task": {"name": "quadratic", "dim": 6}, "optimizer": {"name": "sgd", "lr": 0.01}}
    events, _ = _run({**spec, "steps": 1, "device": "cpu"})
    task = JobSpec.model_validate({**spec, "device": "cpu"}).task.build(torch.device("cpu"), 0)
    task.next_batch()
    task.loss().backward()
    expected = torch.cat([p.grad.double().flatten() for p in task.params]).norm().item()
    first = next(e for e in events if isinstance(e, Metrics))
    assert first.grad_norm == pytest.approx(expected, rel=1e-6)


def test_large_lra_spectra_are_flagged_as_estimates_down_to_the_figure() -> None:
    events, status = _run(
        {
            "task": {"name": "xor", "sequence_length": 8, "batch_size": 32},  # 1,021 parameters
            "optimizer": {"name": "psgd-lra"},
            "steps": 3,
            "snapshot_every": 3,
        }
    )
    assert status.status == "succeeded"
    last = [e for e in events if isinstance(e, Spectrum)][-1]
    assert last.estimated == ["all"] and len(last.spectra["all"]) == 256
    figures = pytest.importorskip("playground.figures")
    fig = figures.spectrum_figure([("psgd-lra", [e.model_dump() for e in events])])
    assert "psgd-lra: P (estimate) at step 3" in [t.name for t in fig.data]
    assert "(estimate)" in fig.layout.title.text


def test_small_preconditioners_are_exact_in_the_spectrum_event() -> None:
    events, _ = _run(
        {
            "task": {"name": "rosenbrock"},
            "optimizer": {"name": "psgd-lra"},
            "steps": 4,
            "snapshot_every": 2,
        }
    )
    spectra = [e for e in events if isinstance(e, Spectrum)]
    assert spectra and all(e.estimated == [] for e in spectra)


def test_trajectory_points_are_not_thinned_by_dear_spectrum_snapshots(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A spectrum snapshot far dearer than a step spaces only the spectra: the landscape's
    path keeps ≈ a point every 1 % of the steps (with one shared cadence, a 200-step
    Rosenbrock job drew its path from 2 points)."""
    import server.runner as runner

    real = runner._spectrum_snapshot

    def dear(*args: Any) -> bool:
        time.sleep(0.01)
        return real(*args)

    monkeypatch.setattr(runner, "_spectrum_snapshot", dear)
    events, _ = _run(
        {"task": {"name": "rosenbrock"}, "optimizer": {"name": "psgd-dense"}, "steps": 200}
    )
    points = [e.step for e in events if isinstance(e, Trajectory)]
    spectra = [e.step for e in events if isinstance(e, Spectrum)]
    # every 2 steps at best (200 // 100); a point that costs more now and then spaces one
    assert len(spectra) <= 5 and len(points) >= 50
