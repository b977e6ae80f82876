"""Steps to solve the delayed-XOR RNN (the seed paper's long-memory benchmark).

What it measures
    For each seed: build `server.tasks.xor` (the reference §5.2 spec: vanilla tanh RNN with
    30 units, batch 128, a fresh batch every step), train it with one optimizer, and report
    the first step whose training-batch loss is below 0.1 (the reference's "solved"), or
    "not solved" after --steps. The loss is printed every --log-every steps.

Optimizers (--optimizer)
    lra       psgd.LRA with the xor task's `psgd-lra` preset, read from the registry
              (`server.optimizers.TASK_PRESETS`): Newton fitting, rank 10, init scale 1.0,
              update-norm clip 1.0; --lr, --preconditioner-lr and --clip override it.
    lra-auto  the same with the automatic init scale (reference: stays at log 2 on T = 64).
    adam      torch.optim.Adam lr 1e-3, gradient-norm clip 1.0 (reference: solves T = 32,
              not T = 64 in 30k).
    kron      psgd.Kron whitening with the xor task's `psgd-kron` preset (the reference demo
              settings: lr 1e-3, preconditioner lr 0.01, init scale 1.0), update probability 1.0.

How to run
    .venv/bin/python benchmarks/xor_delay.py --T 64 --seeds 0,1,2 --steps 30000
    .venv/bin/python benchmarks/xor_delay.py --T 32 --optimizer adam --seeds 0
    .venv/bin/python benchmarks/xor_delay.py --T 64 --seeds 0-15 --steps 100000 --jobs 8 \
        --device cuda          # the spec's cap on many seeds: a GPU machine
    Flags: --T (default 64)  --seeds 0,1,2  --steps (cap, default 30000)
    --optimizer lra|lra-auto|adam|kron  --log-every (default 1000)  --threads (default 1)
    --hidden (default 30)  --batch (default 128)  --cell rnn|lstm  --device cpu|cuda|auto
    --jobs (seeds run in that many processes at once, default 1)
    --lr, --preconditioner-lr, --clip (lra only; default: the preset's values).

The reference timings (5–8 CPU-minutes per solved T = 64 run) were one thread per run.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psgd
from server.optimizers import TASK_PRESETS
from server.tasks.xor import XorConfig, XorTask

OPTIMIZERS = ("lra", "lra-auto", "adam", "kron")


def lra_settings(overrides: dict[str, float | None]) -> dict[str, object]:
    """The `psgd-lra` preset of the xor task (the registry's), with the given overrides."""
    settings = dict(TASK_PRESETS["xor"]["psgd-lra"])
    settings.update({k: v for k, v in overrides.items() if v is not None})
    return settings


def make_stepper(
    name: str, task: XorTask, seed: int, lra: dict[str, object]
) -> Callable[[], float]:
    """One training step on the task's current batch; returns that batch's loss."""
    params = task.params
    if name in ("lra", "lra-auto"):
        opt = psgd.LRA(params, **lra, seed=seed)

        def step() -> float:
            return float(opt.step(task.loss).detach())

        return step
    if name == "kron":
        preset = TASK_PRESETS["xor"]["psgd-kron"]
        opt = psgd.Kron(params, **preset, preconditioner_update_probability=1.0, seed=seed)
    elif name == "adam":
        opt = torch.optim.Adam(params, lr=1e-3)
    else:
        raise ValueError(f"unknown optimizer {name!r}; one of {OPTIMIZERS}")

    def first_order_step() -> float:
        opt.zero_grad(set_to_none=True)
        loss = task.loss()
        loss.backward()
        if name == "adam":
            torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return float(loss.detach())

    return first_order_step


def run(args: argparse.Namespace, seed: int) -> tuple[int | None, float, float]:
    """Train one seed; returns (steps to solve or None, last loss, seconds)."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(seed)
    cfg = XorConfig(
        sequence_length=args.T, hidden_size=args.hidden, batch_size=args.batch, cell=args.cell
    )
    task = cfg.build(torch.device(args.device), seed)
    step = make_stepper(args.optimizer, task, seed, args.lra)
    start = time.perf_counter()
    loss, window = math.nan, []
    for t in range(1, args.steps + 1):
        loss = step()
        window.append(loss)
        if not math.isfinite(loss):
            print(f"  seed {seed}: non-finite loss at step {t}", flush=True)
            return None, loss, time.perf_counter() - start
        if task.solved(loss):
            elapsed = time.perf_counter() - start
            acc = task.evaluate()["accuracy"]
            print(
                f"  seed {seed}: SOLVED at step {t} (loss {loss:.4f}, held-out acc {acc:.3f}, "
                f"{elapsed:.0f} s, {t / elapsed:.1f} steps/s)",
                flush=True,
            )
            return t, loss, elapsed
        if t % args.log_every == 0:
            elapsed = time.perf_counter() - start
            mean = sum(window) / len(window)
            window = []
            print(
                f"  seed {seed} step {t:6d}: loss {loss:.4f} (mean of last {args.log_every}: "
                f"{mean:.4f}), {elapsed:.0f} s, {t / elapsed:.1f} steps/s",
                flush=True,
            )
        task.next_batch()
    elapsed = time.perf_counter() - start
    print(f"  seed {seed}: not solved in {args.steps} steps (last loss {loss:.4f})", flush=True)
    return None, loss, elapsed


def parse_seeds(text: str) -> list[int]:
    """`"0,3,5-7"` → `[0, 3, 5, 6, 7]`; raises ValueError on anything else."""
    seeds: list[int] = []
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        start, stop = int(first), int(last if dash else first)
        if stop < start:
            raise ValueError(part)
        seeds.extend(range(start, stop + 1))
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ValueError(text)
    return seeds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--T", type=int, default=64, help="sequence length")
    parser.add_argument(
        "--seeds", default="0,1,2", help="seeds: a comma-separated list; a-b ranges"
    )
    parser.add_argument("--steps", type=int, default=30000, help="step cap per seed")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="lra")
    parser.add_argument("--lr", type=float, help="lra: parameter lr (default: the preset's)")
    parser.add_argument(
        "--preconditioner-lr", type=float, help="lra: preconditioner lr (default: the preset's)"
    )
    parser.add_argument("--clip", type=float, help="lra: update-norm clip (default: the preset's)")
    parser.add_argument("--log-every", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--jobs", type=int, default=1, help="seeds run in parallel processes")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    parser.add_argument("--hidden", type=int, default=30)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--cell", choices=("rnn", "lstm"), default="rnn")
    args = parser.parse_args(argv)
    try:
        seeds = parse_seeds(args.seeds)
    except ValueError:
        parser.error(f"--seeds: expected e.g. 0,1,2 or 0-7, got {args.seeds!r}")
    if args.jobs < 1:
        parser.error("--jobs: must be at least 1")
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: this torch build sees no CUDA device")
    args.lra = lra_settings(
        {"lr": args.lr, "preconditioner_lr": args.preconditioner_lr, "update_clip_norm": args.clip}
    )
    if args.optimizer == "lra-auto":
        args.lra["preconditioner_init_scale"] = None
    print(
        f"delayed XOR: T={args.T} optimizer={args.optimizer} cell={args.cell} "
        f"hidden={args.hidden} batch={args.batch} cap={args.steps} device={args.device} "
        f"threads={args.threads} jobs={args.jobs}",
        flush=True,
    )
    if args.optimizer.startswith("lra"):
        print(f"psgd.LRA settings: {args.lra}", flush=True)
    if args.jobs == 1:
        outcomes = [run(args, seed) for seed in seeds]
    else:
        # Spawned workers: forked ones would inherit torch's thread pools (and CUDA) half-made.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
            outcomes = list(pool.map(run, [args] * len(seeds), seeds))
    results = [(seed, *outcome) for seed, outcome in zip(seeds, outcomes)]
    print("\nseed  steps-to-solve  last-loss  seconds  steps/s")
    for seed, solved_at, loss, secs in results:
        done = solved_at if solved_at is not None else args.steps
        shown = str(solved_at) if solved_at is not None else f"- (>{args.steps})"
        print(f"{seed:4d}  {shown:>14}  {loss:9.4f}  {secs:7.0f}  {done / secs:7.1f}")
    solved = [r[1] for r in results if r[1] is not None]
    print(f"solved {len(solved)}/{len(results)}", flush=True)


if __name__ == "__main__":
    main()
