"""Suite 3: CIFAR-10 test accuracy per epoch, PSGD (Kron, LRA, XMat) against SGD with
momentum and AdamW, each with the task's preset, over several seeds.

The presets were chosen by a sweep on a validation split carved from the training images
(`benchmarks/cifar_presets_sweep.json`, README "Tasks"); these jobs train on the same
images (the same `train_size` and `validation_size`), on seeds the sweep's trials did not
use, and are the first to score the test subset: the held-out protocol of issue 15, with
this suite's jobs in the place of a sweep's re-runs. Nothing here is selected on the test
images.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from server.jobs.summary import OUTCOMES, Criteria, Outcome, summarize
from server.optimizers import optimizer_config
from server.specs import ComparisonSpec
from server.stats import mean_interval
from server.suites.base import Figure, Mode, Report, Run, Series, Suite, Table

PSGD = ("psgd-kron", "psgd-lra", "psgd-xmat")
BASELINES = ("sgd", "adamw")
OPTIMIZERS = (*PSGD, *BASELINES)
METRIC = "test_accuracy"
#: the images the presets' sweep selected on: its trials and these jobs train on the same
SWEEP_SPLIT = {"train_size": 5000, "validation_size": 1000, "test_size": 2000, "batch_size": 128}

#: per mode: the task, the epochs, the seeds (the sweep's trials ran seed 0: these are fresh)
_MODES: dict[str, dict[str, Any]] = {
    "smoke": {
        "task": {
            "train_size": 300,
            "validation_size": 100,
            "test_size": 100,
            "train_eval_size": 100,
            "batch_size": 50,
        },
        "epochs": 2,
        "seeds": [1],
    },
    "quick": {"task": SWEEP_SPLIT, "epochs": 2, "seeds": [1, 2, 3]},
    "full": {
        "task": {
            "model": "resnet18",
            "train_size": 50000,
            "validation_size": 5000,
            "test_size": 10000,
            "batch_size": 128,
        },
        "epochs": 30,
        "seeds": [1, 2, 3, 4, 5],
    },
}


def comparison(
    mode: Mode, optimizers: Sequence[str], task_options: dict[str, Any]
) -> ComparisonSpec:
    """The mode's CIFAR-10 comparison of `optimizers` (each with the task's preset), the
    task given `task_options` besides the mode's split; the flatness suite shares it."""
    setting = _MODES[mode]
    return ComparisonSpec.model_validate(
        {
            "task": {"name": "cifar10", **setting["task"], **task_options},
            "epochs": setting["epochs"],
            "seeds": setting["seeds"],
            "optimizers": [{"name": name} for name in optimizers],
        }
    )


def plan(mode: Mode) -> list[tuple[str, ComparisonSpec]]:
    model = "ResNet-18, full CIFAR-10" if mode == "full" else "small CNN, CPU subset"
    return [(f"CIFAR-10 test accuracy ({model})", comparison(mode, OPTIMIZERS, {}))]


# ------------------------------------------------------------------------------ analysis
def outcomes(runs: Sequence[Run]) -> list[Outcome]:
    return [Outcome(run.label, run.status, run.summary) for run in runs]


def tuned_values(run: Run) -> str:
    """The hyperparameters this run used that differ from the optimizer's own defaults
    (i.e. what the task's preset set), as `lr=0.01, momentum=0.9`."""
    spec = run.spec.get("optimizer") or {}
    defaults = optimizer_config({"name": spec.get("name")}).model_dump()
    changed = [
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in spec.items()
        if k != "name" and defaults.get(k) != v
    ]
    return ", ".join(changed) or "defaults"


def interval_text(values: Sequence[float], scale: float = 1.0, digits: int = 1) -> str:
    """ "mean [low, high]" (a 95 % t interval; the mean alone from one value)."""
    if not values:
        return "–"
    interval = mean_interval([v * scale for v in values])
    if interval.low is None or interval.high is None:
        return f"{interval.estimate:.{digits}f} (n = 1)"
    return f"{interval.estimate:.{digits}f} [{interval.low:.{digits}f}, {interval.high:.{digits}f}]"


def training_seconds_per_epoch(run: Run) -> float | None:
    """The run's seconds less its evaluations and inspection snapshots, per epoch: what
    the optimizer's training loop took."""
    summary = run.summary
    epochs = (run.spec.get("epochs") or 0) if summary.get("steps") else 0
    seconds = summary.get("seconds")
    if not epochs or not isinstance(seconds, (int, float)):
        return None
    overhead = summary.get("overhead") or {}
    observed = sum(
        float((overhead.get(name) or {}).get("seconds", 0.0))
        for name in ("evaluations", "snapshots", "trajectories")
    )
    return (seconds - observed) / epochs


def per_epoch(runs: Sequence[Run], metric: str) -> dict[int, list[float]]:
    """The metric at each evaluated epoch over `runs` (an epoch's values, one per run)."""
    curve: dict[int, list[float]] = {}
    for run in runs:
        for event in run.of_type("eval"):
            value = (event.get("metrics") or {}).get(metric)
            if isinstance(value, (int, float)):
                curve.setdefault(round(float(event["epoch"])), []).append(float(value))
    return curve


def curve_series(name: str, curve: dict[int, list[float]], scale: float = 1.0) -> Series:
    """Mean per epoch with its 95 % interval as a band (the mean where one run)."""
    epochs = sorted(curve)
    intervals = [mean_interval([v * scale for v in curve[e]]) for e in epochs]
    return Series(
        name=name,
        x=[float(e) for e in epochs],
        y=[i.estimate for i in intervals],
        low=[i.estimate if i.low is None else i.low for i in intervals],
        high=[i.estimate if i.high is None else i.high for i in intervals],
    )


def by_label(runs: Sequence[Run]) -> dict[str, list[Run]]:
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.label, []).append(run)
    return groups


def pair_table(summary: dict[str, Any], what: str) -> Table:
    return Table(
        title=f"Pairs: {what} (Welch's t, 95 %)",
        columns=["pair", "beyond the noise", "statement"],
        rows=[
            [f"{p['a']} vs {p['b']}", "yes" if p["beyond_noise"] else "no", p["sentence"]]
            for p in summary["pairs"]
        ],
    )


def analyse(runs: list[Run], mode: Mode) -> Report:
    groups = by_label(runs)
    summary = summarize(outcomes(runs), Criteria(metric=METRIC, lower_is_better=False))
    rows, finals = [], {}
    for entry in summary["optimizers"]:
        label, group = entry["label"], groups[entry["label"]]
        final = entry["final"]
        finals[label] = final["mean"] if final else None
        seconds = [s for run in group if (s := training_seconds_per_epoch(run)) is not None]
        statuses = ", ".join(f"{n} {status}" for status, n in sorted(entry["statuses"].items()))
        rows.append(
            [
                label,
                tuned_values(group[0]),
                statuses,
                interval_text(final_values(group, METRIC), scale=100),
                interval_text(seconds),
            ]
        )
    table = Table(
        title="Final test accuracy and training time per epoch (mean [95 % t interval])",
        columns=["optimizer", "hyperparameters (preset)", "runs", "test accuracy %", "s / epoch"],
        rows=rows,
    )
    figures = [
        Figure(
            name="test_accuracy",
            title="CIFAR-10 test accuracy per epoch (mean, 95 % band)",
            x_label="epoch",
            y_label="test accuracy %",
            series=[curve_series(label, per_epoch(g, METRIC), 100) for label, g in groups.items()],
        )
    ]
    return Report(
        verdict=_verdict(summary, mode),
        finding=_finding(summary, finals, mode, runs),
        tables=[table, pair_table(summary, "final test accuracy")],
        figures=figures,
        notes=_notes(mode),
    )


def final_values(group: Sequence[Run], metric: str) -> list[float]:
    """`metric` of each run's final evaluation, for runs that ended as outcomes of the
    optimizer (succeeded or diverged; failed and cancelled runs say nothing about it)."""
    values = []
    for run in group:
        value = (run.summary.get("final_eval") or {}).get(metric)
        if run.status in OUTCOMES and isinstance(value, (int, float)):
            values.append(float(value))
    return values


def psgd_ahead(summary: dict[str, Any], higher_is_better: bool) -> dict[str, bool]:
    """Per PSGD family in the comparison: better than every baseline in it, beyond the
    noise (its pair's Welch interval excludes 0, on the better side)."""
    pairs = {(p["a"], p["b"]): p for p in summary["pairs"]}
    labels = [o["label"] for o in summary["optimizers"]]
    baselines = [label for label in labels if label in BASELINES]
    ahead = {}
    for family in (label for label in labels if label in PSGD):
        wins = [_better(pairs, family, base, higher_is_better) for base in baselines]
        ahead[family] = bool(wins) and all(wins)
    return ahead


def _better(pairs: dict[tuple[str, str], dict[str, Any]], a: str, b: str, higher: bool) -> bool:
    pair, sign = pairs.get((a, b)), 1
    if pair is None:
        pair, sign = pairs.get((b, a)), -1
    if pair is None or not pair["beyond_noise"]:
        return False
    difference = sign * pair["difference"]
    return difference > 0 if higher else difference < 0


def _verdict(summary: dict[str, Any], mode: Mode) -> Any:
    if mode != "full":
        return "not yet run at full scale"
    return "reproduced" if any(psgd_ahead(summary, True).values()) else "not reproduced"


def _finding(
    summary: dict[str, Any], finals: dict[str, float | None], mode: Mode, runs: Sequence[Run]
) -> str:
    epochs = max((run.spec.get("epochs") or 0 for run in runs), default=0)
    seeds = len({run.seed for run in runs})
    ranked = sorted(
        ((label, v) for label, v in finals.items() if v is not None), key=lambda lv: -lv[1]
    )
    means = ", ".join(f"{label} {100 * v:.1f} %" for label, v in ranked) or "no finished runs"
    ahead = [family for family, yes in psgd_ahead(summary, True).items() if yes]
    ahead_text = (
        f"PSGD ahead of both baselines beyond the noise: {', '.join(ahead)}"
        if ahead
        else "no PSGD family is ahead of both baselines beyond the noise"
    )
    scale = {
        "smoke": "Smoke mode (a few steps on a few hundred images) only checks the path",
        "quick": "Quick mode (small CNN, 4,000 training images, CPU) is far from the "
        "paper's setting",
        "full": "Full mode (ResNet-18, 45,000 training images)",
    }[mode]
    return (
        f"Mean final test accuracy after {epochs} epoch(s) over {seeds} seed(s): {means}; "
        f"{ahead_text}. {scale}."
    )


def _notes(mode: Mode) -> list[str]:
    notes = [
        "Hyperparameters: the cifar10 presets, chosen by a sweep on a validation split "
        "carved from the training images (benchmarks/cifar_presets_sweep.json; the small "
        "CNN, 2 epochs, 8 trials per optimizer); the test images were scored only here.",
        "s / epoch: the run's seconds less its evaluations and spectrum/trajectory "
        "snapshots, divided by the epochs (one torch thread per job, shared machine).",
        "Verdict rule (full mode): reproduced when some PSGD family has a higher final test "
        "accuracy than both SGD and AdamW, each beyond the noise (Welch's t, 95 %).",
    ]
    if mode != "full":
        notes.append(
            "Full mode (`--full`, a GPU machine): ResNet-18 on all 50,000/10,000 images "
            "(5,000 held out for validation), 30 epochs, 5 seeds."
        )
    else:
        notes.append(
            "The presets were selected for the small CNN at 2 epochs; ResNet-18 over 30 "
            "epochs may prefer others: re-derive them with a sweep on this task for a fair "
            "full-scale result."
        )
    return notes


SUITE = Suite(
    name="cifar",
    title="CIFAR-10: PSGD against SGD and AdamW",
    claim="PSGD (Kron, LRA, XMat) reaches a higher CIFAR-10 test accuracy than SGD with "
    "momentum and AdamW at the same number of epochs.",
    description="Test accuracy per epoch and training seconds per epoch of PSGD Kron, LRA "
    "and XMat, SGD with momentum and AdamW, each with the cifar10 preset chosen on a "
    "validation split, over several seeds: the small CNN on 4,000 training images of the "
    "10k/2k subset on a CPU (quick), ResNet-18 on the full data set (full).",
    plan=plan,
    analysed_events=frozenset({"eval"}),
    analyse=analyse,
)
