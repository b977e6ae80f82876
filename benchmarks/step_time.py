"""Training-step time of PSGD optimizers against AdamW and SGD, measured in one run.

What it measures
    The wall time of a full training step (forward, backward, `optimizer.step()`,
    `zero_grad()`) for each optimizer on two workloads with random inputs and labels
    (fixed seed):

    * ``resnet18``: a BasicBlock ResNet-18 for 32×32 images (3×3 stem, no max-pool,
      64/128/256/512 channels, BatchNorm, 10 classes, ~11.2M parameters); batch 32 on
      CPU, 128 on a GPU.
    * ``mlp``: 784→1024→1024→1024→10 with ReLU (~2.9M parameters); batch 128.

    Optimizers: ``torch.optim.AdamW`` and ``torch.optim.SGD(momentum=0.9)`` as baselines;
    ``psgd.Kron`` (whitening, defaults) at preconditioner update probability 1.0 and 0.1
    on both models; ``psgd.LRA`` (rank 10), ``psgd.XMat`` and ``psgd.Diag`` (whitening,
    p = 0.1) on the MLP (on the ResNet too with ``--all-psgd-on-resnet``). The PyPI
    peers ``heavyball.PSGDKron`` and ``kron_torch.Kron`` run at p = 1.0 and 0.1 (a
    constant) with the same lr when they are importable; otherwise they are reported as
    not installed. Every optimizer uses lr 1e-3; the rest are each library's defaults.

    Per optimizer the table shows the median time per step, the median paired ratio to
    AdamW, and for PSGD the floats held by the preconditioner (`preconditioner_numel()`)
    against the model's parameter count.

Why interleaved, paired ratios
    Shared machines drift: thermal and frequency changes, neighbours, the allocator.
    Timing optimizer A for a minute and then optimizer B confounds the drift with the
    optimizer. So every optimizer trains its own copy of one seeded model, is warmed up
    (which also creates PSGD's lazy state), and then the timing runs in R rounds; in each
    round every optimizer runs one block of B consecutive steps (the order rotates from
    round to round). Each block's time is divided by the AdamW block of the same round,
    and the reported ratio is the median of these R ratios. The absolute ms/step moves
    with the machine; the paired ratio is the stable number. B must be at least 10 so
    that a block at p = 0.1 includes a preconditioner update on average. Pairing absorbs
    slow drift, not other jobs competing for the same cores: the header prints the
    1-minute load average, and a run that starts (or ends, see the JSON) with a load
    above the CPU count should be repeated on a quiet machine.

How to run
    make bench                                        # all defaults
    make bench BENCH_ARGS="--threads 2 --markdown benchmarks/latest.md"
    .venv/bin/python benchmarks/step_time.py --quick  # smoke run: 2 rounds of 10 steps
    .venv/bin/python benchmarks/step_time.py --models mlp --rounds 9 --block 20

    Flags: --models resnet18,mlp  --rounds R (default 7)  --block B (>= 10, default 10)
    --warmup N (untimed steps, default 3)  --device auto|cpu|cuda  --threads N
    (torch.set_num_threads; default: torch's)  --batch N (overrides both models)
    --all-psgd-on-resnet  --json PATH (default benchmarks/results/step_time.json)
    --markdown PATH  --quick.

Targets (from the issue)
    * Kron whitening at p = 0.1: at most 1.1× AdamW's step time on CPU and on a GPU.
    * Kron whitening at p = 1.0: at most 1.6× AdamW's step time on CPU.
    * Kron's preconditioner state with defaults on ResNet-18: at most half the parameter
      count (floats / params <= 0.5).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import importlib
import importlib.metadata
import itertools
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import psgd

LR = 1e-3
SEED = 0
MIN_BLOCK = 10
MODELS = ("resnet18", "mlp")
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "step_time.json"
PEERS = (("heavyball", "PSGDKron"), ("kron_torch", "Kron"))

OptimizerFactory = Callable[[list[nn.Parameter]], torch.optim.Optimizer]


# ----------------------------------------------------------------------------- models
class BasicBlock(nn.Module):
    """Two 3×3 conv-BN layers with an identity (or 1×1 conv-BN projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 for 32×32 inputs: 3×3 stem, no max-pool, [2, 2, 2, 2] BasicBlocks."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU()
        )
        blocks, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(512, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.blocks(self.stem(x))
        return self.head(F.adaptive_avg_pool2d(out, 1).flatten(1))


def mlp() -> nn.Module:
    """784→1024→1024→1024→10 with ReLU."""
    widths = (784, 1024, 1024, 1024)
    layers: list[nn.Module] = []
    for cin, cout in itertools.pairwise(widths):
        layers += [nn.Linear(cin, cout), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(widths[-1], 10))


@dataclass
class Workload:
    name: str
    model: nn.Module
    inputs: Tensor
    targets: Tensor

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def make_workload(name: str, batch: int, device: torch.device) -> Workload:
    """The seeded model and one fixed random batch of inputs and labels."""
    torch.manual_seed(SEED)
    model = ResNet18() if name == "resnet18" else mlp()
    shape = (batch, 3, 32, 32) if name == "resnet18" else (batch, 784)
    inputs, targets = torch.randn(shape), torch.randint(0, 10, (batch,))
    return Workload(name, model.to(device), inputs.to(device), targets.to(device))


# ------------------------------------------------------------------------- optimizers
@dataclass(frozen=True)
class OptimizerSpec:
    label: str
    probability: float | None  # preconditioner update probability; None for baselines
    build: OptimizerFactory
    peer: bool = False  # another library's: its failure is reported, not fatal


def baseline_specs() -> list[OptimizerSpec]:
    return [
        OptimizerSpec("AdamW", None, lambda ps: torch.optim.AdamW(ps, lr=LR)),
        OptimizerSpec("SGD m=0.9", None, lambda ps: torch.optim.SGD(ps, lr=LR, momentum=0.9)),
    ]


def psgd_spec(name: str, p: float) -> OptimizerSpec:
    cls = getattr(psgd, name)
    label = f"psgd.{name}" + (" r=10" if name == "LRA" else "")
    return OptimizerSpec(
        label,
        p,
        lambda ps: cls(ps, lr=LR, preconditioner_update_probability=p, seed=SEED),
    )


def import_peer(module: str, attr: str) -> type | None:
    """The peer's optimizer class, or None (with the reason printed)."""
    try:
        return getattr(importlib.import_module(module), attr)
    except ModuleNotFoundError:
        print(f"{module}: not installed")
    except Exception as exc:  # a broken peer install must not stop the benchmark
        print(f"{module}: unavailable ({type(exc).__name__}: {exc})")
    return None


def peer_version(module: str) -> str:
    """ "heavyball 3.2.1": which release was timed (a peer's speed changes between them)."""
    try:
        return f"{module} {importlib.metadata.version(module)}"
    except importlib.metadata.PackageNotFoundError:
        return f"{module} (version unknown)"


def peer_specs(peers: dict[str, type], p: float) -> list[OptimizerSpec]:
    return [
        OptimizerSpec(
            f"{module}.{cls.__name__}",
            p,
            lambda ps, cls=cls: cls(ps, lr=LR, preconditioner_update_probability=p),
            peer=True,
        )
        for module, cls in peers.items()
    ]


def specs_for(model: str, peers: dict[str, type], all_psgd: bool) -> list[OptimizerSpec]:
    specs = baseline_specs()
    for p in (1.0, 0.1):
        specs += [psgd_spec("Kron", p), *peer_specs(peers, p)]
    if model == "mlp" or all_psgd:
        specs += [psgd_spec(name, 0.1) for name in ("LRA", "XMat", "Diag")]
    return specs


# ----------------------------------------------------------------------------- timing
@dataclass
class Runner:
    spec: OptimizerSpec
    model: nn.Module
    optimizer: torch.optim.Optimizer
    blocks: list[float] = field(default_factory=list)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_step(runner: Runner, work: Workload) -> None:
    loss = F.cross_entropy(runner.model(work.inputs), work.targets)
    loss.backward()
    runner.optimizer.step()
    runner.optimizer.zero_grad()


def time_block(runner: Runner, work: Workload, steps: int, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        train_step(runner, work)
    synchronize(device)
    return time.perf_counter() - start


def make_runner(spec: OptimizerSpec, work: Workload) -> Runner:
    model = copy.deepcopy(work.model)
    return Runner(spec, model, spec.build(list(model.parameters())))


def run_interleaved(
    runners: list[Runner], work: Workload, rounds: int, block: int, device: torch.device
) -> list[str]:
    """R rounds; each round times one block per runner, the order rotating by one. A peer
    that fails (e.g. compiling its first preconditioner update) leaves the runners, and
    why is returned; ours and the baselines must run."""
    failed = []
    for r in range(rounds):
        shift = r % len(runners)
        for runner in runners[shift:] + runners[:shift]:
            try:
                runner.blocks.append(time_block(runner, work, block, device))
            except Exception as exc:
                if not runner.spec.peer:
                    raise
                failed.append(failure(runner.spec, work, exc))
                runners.remove(runner)
    return failed


def failure(spec: OptimizerSpec, work: Workload, exc: Exception) -> str:
    """ "heavyball.PSGDKron p=0.1 on resnet18: InductorError: …", printed as it happens."""
    first = (str(exc).strip().splitlines() or [""])[0].rstrip(": ")  # "AssertionError: "
    reason = f": {first[:120]}" if first else ""
    said = f"{spec.label} p={spec.probability:g} on {work.name}: {type(exc).__name__}{reason}"
    print(f"left out: {said}")
    return said


# ---------------------------------------------------------------------------- results
@dataclass
class Row:
    optimizer: str
    update_probability: float | None
    ms_per_step: float
    ratio_vs_adamw: float
    preconditioner_floats: int | None
    floats_per_param: float | None
    ratios: list[float]
    block_seconds: list[float]


def preconditioner_floats(optimizer: torch.optim.Optimizer) -> int | None:
    numel = getattr(optimizer, "preconditioner_numel", None)
    return int(numel()) if callable(numel) else None


def summarize(runner: Runner, adamw: Runner, block: int, params: int) -> Row:
    ratios = [t / a for t, a in zip(runner.blocks, adamw.blocks)]
    floats = preconditioner_floats(runner.optimizer)
    return Row(
        optimizer=runner.spec.label,
        update_probability=runner.spec.probability,
        ms_per_step=1e3 * statistics.median(runner.blocks) / block,
        ratio_vs_adamw=statistics.median(ratios),
        preconditioner_floats=floats,
        floats_per_param=None if floats is None else floats / params,
        ratios=ratios,
        block_seconds=runner.blocks,
    )


def benchmark_model(
    work: Workload, specs: list[OptimizerSpec], args: argparse.Namespace
) -> tuple[list[Row], list[str]]:
    """The rows of the optimizers that ran, and why any peer was left out: a peer that
    fails in its warm-up or timing (e.g. its `torch.compile` on this torch) is reported,
    not fatal; ours and the baselines must run."""
    runners, failed = [], []
    for spec in specs:
        runner = make_runner(spec, work)
        try:
            for _ in range(args.warmup):
                train_step(runner, work)
        except Exception as exc:
            if not spec.peer:
                raise
            failed.append(failure(spec, work, exc))
            continue
        runners.append(runner)
    failed += run_interleaved(runners, work, args.rounds, args.block, args.device)
    return [summarize(r, runners[0], args.block, work.params) for r in runners], failed


# ----------------------------------------------------------------------------- output
HEADERS = (
    "optimizer",
    "update prob",
    "ms/step (median)",
    "ratio vs AdamW (median paired)",
    "preconditioner floats",
    "floats / params",
)


def _fmt(value: float | int | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table_cells(rows: list[Row]) -> list[tuple[str, ...]]:
    return [
        (
            row.optimizer,
            _fmt(row.update_probability, "g"),
            _fmt(row.ms_per_step, ".1f"),
            _fmt(row.ratio_vs_adamw, ".2f") + "×",
            _fmt(row.preconditioner_floats, ",d"),
            _fmt(row.floats_per_param, ".3f"),
        )
        for row in rows
    ]


def text_table(rows: list[Row]) -> str:
    cells = [HEADERS, *table_cells(rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(HEADERS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: list[Row]) -> str:
    lines = [HEADERS, ("---",) * len(HEADERS), *table_cells(rows)]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def model_title(work: Workload, rounds: int, block: int) -> str:
    return (
        f"{work.name}: {work.params:,} params, batch {len(work.inputs)}, "
        f"{rounds} rounds × {block} steps per optimizer"
    )


def environment(device: torch.device) -> dict[str, object]:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "psgd": psgd.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": f"{device.type} ({name or platform.machine()})",
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count() or 0,
        "load_average_start": round(os.getloadavg()[0], 2),
    }


def header_line(env: dict[str, object]) -> str:
    return (
        f"torch {env['torch']} | device {env['device']} | threads {env['threads']} | "
        f"load {env['load_average_start']} on {env['cpus']} CPUs | {env['date']}"
    )


def write_json(path: Path, env: dict, args: argparse.Namespace, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    settings = {"rounds": args.rounds, "block": args.block, "warmup": args.warmup}
    settings |= {"lr": LR, "seed": SEED}
    payload = {"environment": env, "settings": settings, "models": results}
    path.write_text(json.dumps(payload, indent=2) + "\n")


def write_markdown(path: Path, env: dict, sections: list[tuple[str, list[Row]]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    parts = ["# Step time vs AdamW", "", header_line(env), ""]
    for title, rows in sections:
        parts += [f"## {title}", "", markdown_table(rows), ""]
    path.write_text("\n".join(parts))


# -------------------------------------------------------------------------------- CLI
def model_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODELS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"choose from {','.join(MODELS)}, got {text!r}")
    return names


def _int_at_least(text: str, minimum: int) -> int:
    value = int(text)
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
    return value


def positive_int(text: str) -> int:
    return _int_at_least(text, 1)


def block_size(text: str) -> int:
    return _int_at_least(text, MIN_BLOCK)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time training steps of PSGD optimizers against AdamW and SGD."
    )
    parser.add_argument("--models", type=model_list, default=list(MODELS))
    parser.add_argument("--rounds", type=positive_int, default=7, help="timed blocks per optimizer")
    parser.add_argument("--block", type=block_size, default=MIN_BLOCK, help="steps per block")
    parser.add_argument(
        "--warmup", type=positive_int, default=3, help="untimed steps per optimizer"
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--threads", type=positive_int, help="torch.set_num_threads")
    parser.add_argument("--batch", type=positive_int, help="batch size for every model")
    parser.add_argument("--all-psgd-on-resnet", action="store_true")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--quick", action="store_true", help="2 rounds of 10 steps")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available")
    if args.quick:
        args.rounds, args.block = 2, MIN_BLOCK
    auto = "cuda" if torch.cuda.is_available() else "cpu"
    args.device = torch.device(auto if args.device == "auto" else args.device)
    return args


def default_batch(model: str, device: torch.device) -> int:
    return 128 if model == "mlp" or device.type == "cuda" else 32


def measure(
    args: argparse.Namespace,
) -> tuple[dict[str, object], dict[str, dict], list[tuple[str, list[Row]]]]:
    """Time every model's optimizers: the environment, the JSON results per model and the
    (title, rows) sections. Also the step-cost suite's measurement (server.suites.step_cost)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    env = environment(args.device)
    print(header_line(env))
    loaded = {module: import_peer(module, attr) for module, attr in PEERS}
    peers = {module: cls for module, cls in loaded.items() if cls is not None}
    results, sections, failed = {}, [], []
    for name in args.models:
        work = make_workload(name, args.batch or default_batch(name, args.device), args.device)
        specs = specs_for(name, peers, args.all_psgd_on_resnet)
        rows, left_out = benchmark_model(work, specs, args)
        failed += left_out
        title = model_title(work, args.rounds, args.block)
        print(f"\n{title}\n{text_table(rows)}")
        sections.append((title, rows))
        rows_json = [asdict(row) for row in rows]
        results[name] = {"params": work.params, "batch": len(work.inputs), "rows": rows_json}
    env["load_average_end"] = round(os.getloadavg()[0], 2)
    env["peers"] = ", ".join(peer_version(m) if c else f"{m}: no" for m, c in loaded.items())
    env["peers_failed"] = failed
    return env, results, sections


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    env, results, sections = measure(args)
    write_json(args.json, env, args, results)
    if args.markdown:
        write_markdown(args.markdown, env, sections)
    print(f"\ntotal {time.perf_counter() - started:.0f} s; JSON written to {args.json}")


if __name__ == "__main__":
    main()
