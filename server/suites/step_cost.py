"""Step cost: what a PSGD step costs against AdamW's, folded in from benchmarks/step_time.py.

Not jobs: a job's step time includes the playground's own observation, and this claim is
about the optimizer alone. So the suite calls step_time's interleaved, paired timing (a
source checkout's `benchmarks/`) and reads its rows; `report` is pure, for the tests.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from server.suites.base import Figure, Mode, Report, Series, Suite, Table

#: Kron (whitening) at update probability 0.1 against AdamW's step, per model: the claim
KRON_RATIO_TARGET = 1.1
#: the step_time arguments of each mode (full: its defaults, on the machine's GPU if any)
ARGUMENTS: dict[Mode, list[str]] = {
    "smoke": ["--models", "mlp", "--rounds", "1", "--warmup", "1"],
    "quick": ["--quick"],
    "full": [],
}


def measure(mode: Mode) -> Report:
    try:
        step_time = import_module("benchmarks.step_time")
    except ModuleNotFoundError as e:
        raise RuntimeError(
            "the step-cost suite times with benchmarks/step_time.py: run it from a source checkout"
        ) from e
    args = step_time.parse_args([*ARGUMENTS[mode], "--json", "/dev/null"])
    env, results, _ = step_time.measure(args)
    return report(mode, env, results)


def report(mode: Mode, env: dict[str, Any], results: dict[str, dict[str, Any]]) -> Report:
    """The verdict and tables from step_time's environment and per-model results."""
    kron = {
        model: _row(result["rows"], "psgd.Kron", 0.1)["ratio_vs_adamw"]
        for model, result in results.items()
    }
    met = all(ratio <= KRON_RATIO_TARGET for ratio in kron.values())
    numbers = "; ".join(f"{model} {ratio:.2f}×" for model, ratio in kron.items())
    device = str(env.get("device", "?"))
    finding = (
        f"psgd.Kron (whitening, update probability 0.1) took {numbers} AdamW's step time "
        f"(median of paired per-round ratios) on {device}, load {env.get('load_average_start')} "
        f"at the start; the claim's bound is {KRON_RATIO_TARGET}×, "
        f"{'met' if met else 'not met'} here."
    )
    peers = _peers_sentence(results)
    if peers:
        finding += " " + peers
    if mode == "full":
        verdict = "reproduced" if met else "not reproduced"
    else:
        verdict = "not yet run at full scale"
    tables = [_table(model, result) for model, result in results.items()]
    figures = [_figure(model, result) for model, result in results.items()]
    notes = [
        "Ratios are medians of per-round ratios to AdamW's block in the same round "
        "(interleaved, rotating order): they absorb slow drift, not other jobs on the cores.",
        f"Peers: {env.get('peers', 'not checked')}.",
    ]
    if env.get("peers_failed"):
        notes.append(f"Peers left out (failed): {'; '.join(env['peers_failed'])}.")
    if mode != "full":
        notes.append(
            "Full mode (`--full`) runs step_time.py's defaults, on a GPU when there is one: "
            "the claim is about GPU training; this mode's CPU numbers say how it fares here."
        )
    return Report(verdict, finding, tables, figures, notes)


def _peers_sentence(results: dict[str, dict[str, Any]]) -> str:
    """The PyPI peers' Kron at p = 0.1 against AdamW, next to ours, where they ran."""
    parts = []
    for model, result in results.items():
        peers = [
            f"{row['optimizer']} {row['ratio_vs_adamw']:.2f}×"
            for row in result["rows"]
            if row["update_probability"] == 0.1 and not row["optimizer"].startswith("psgd.")
        ]
        if peers:
            parts.append(f"{model}: {', '.join(peers)}")
    return f"PyPI peers at p = 0.1, same runs: {'; '.join(parts)}." if parts else ""


def _row(rows: list[dict[str, Any]], optimizer: str, probability: float) -> dict[str, Any]:
    for row in rows:
        if row["optimizer"] == optimizer and row["update_probability"] == probability:
            return row
    raise ValueError(f"no {optimizer} row at update probability {probability}")


def _table(model: str, result: dict[str, Any]) -> Table:
    def cell(value: float | None, spec: str) -> str:
        return "–" if value is None else format(value, spec)

    rows = [
        [
            row["optimizer"],
            cell(row["update_probability"], "g"),
            cell(row["ms_per_step"], ".1f"),
            f"{row['ratio_vs_adamw']:.2f}× ({min(row['ratios']):.2f}–{max(row['ratios']):.2f})",
            cell(row["floats_per_param"], ".3f"),
        ]
        for row in result["rows"]
    ]
    return Table(
        f"{model}: {result['params']:,} parameters, batch {result['batch']}",
        ["optimizer", "update prob", "ms/step", "× AdamW (rounds' range)", "P floats / params"],
        rows,
    )


def _figure(model: str, result: dict[str, Any]) -> Figure:
    series = [
        Series(
            f"{row['optimizer']}"
            + (f" p={row['update_probability']:g}" if row["update_probability"] else ""),
            [float(i + 1) for i in range(len(row["ratios"]))],
            [float(r) for r in row["ratios"]],
        )
        for row in result["rows"]
    ]
    return Figure(
        f"ratios-{model}",
        f"{model}: step time over AdamW's, per round",
        "round",
        "× AdamW",
        series,
    )


SUITE = Suite(
    name="step-cost",
    title="Step cost",
    claim=(
        f"A PSGD Kron step (whitening, preconditioner updated with probability 0.1) costs at "
        f"most {KRON_RATIO_TARGET}× an AdamW step."
    ),
    description=(
        "Times training steps of AdamW, SGD, psgd.Kron (p = 1 and 0.1), LRA, XMat and Diag, "
        "and the PyPI peers when installed, on a ResNet-18 and an MLP: interleaved blocks, "
        "paired ratios to AdamW (benchmarks/step_time.py)."
    ),
    measure=measure,
)
