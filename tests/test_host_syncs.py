"""The fitting cores never read a tensor back to the host, and their guards still hold.

Why: on a GPU each read (`float(t)`, `if t > 0`, `x[t]`) is a device sync that stalls
the step; an updating Kron step on a ResNet-18 made 651 of them. On this CPU the reads
are counted by the psgd file that made them (`aten._local_scalar_dense`); the CUDA test
in test_gpu.py runs the same steps under torch's sync debug mode.
"""

from __future__ import annotations

import traceback
from collections import Counter
from typing import Any

import pytest
import torch
from regression_step import regression_step
from torch.utils._python_dispatch import TorchDispatchMode

import psgd
from psgd import kron, lra
from psgd.linalg import procrustes_step, spd_norm_lower_bound

#: The functional cores: every tensor they touch lives on the parameters' device.
CORES = ("kron.py", "lra.py", "linalg.py", "diag.py", "xmat.py", "hvp.py")

#: (family, options): every geometry and LRA choice that has its own code path.
VARIANTS = [(psgd.Kron, {"geometry": geometry}) for geometry in kron.GEOMETRIES] + [
    (psgd.Dense, {}),
    (psgd.LRA, {"uv_balance": "rotate"}),
    (psgd.LRA, {"uv_balance": "norms", "uv_init": "random"}),
    (psgd.LRA, {"step_normalizer": "gradient_norm"}),
    (psgd.LRA, {"rank": 0}),
    (psgd.XMat, {}),
    (psgd.Diag, {}),
]


class HostReads(TorchDispatchMode):
    """Counts tensor-to-Python reads by the psgd source file and line that made them."""

    def __init__(self) -> None:
        super().__init__()
        self.sites: Counter[str] = Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func is torch.ops.aten._local_scalar_dense.default:
            frames = [f for f in traceback.extract_stack() if "/psgd/" in f.filename]
            site = frames[-1] if frames else None
            self.sites[f"{site.filename.rsplit('/', 1)[-1]}:{site.lineno}" if site else "?"] += 1
        return func(*args, **(kwargs or {}))

    def in_cores(self) -> dict[str, int]:
        return {site: n for site, n in self.sites.items() if site.split(":")[0] in CORES}


def _updating_steps(cls: type, options: dict, fitting: str, steps: int) -> HostReads:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    x, y = torch.randn(16, 6), torch.randn(16, 2)
    opt = cls(
        model.parameters(),
        fitting=fitting,
        preconditioner_update_probability=1.0,
        preconditioner_init_scale=1.0,
        **options,
    )
    newton = fitting == "newton"
    regression_step(model, opt, x, y, newton)  # initialises the state: not a long run's cost
    with HostReads() as reads:
        for _ in range(steps):
            regression_step(model, opt, x, y, newton)
    return reads


@pytest.mark.parametrize(("cls", "options"), VARIANTS)
@pytest.mark.parametrize("fitting", ["whiten", "newton"])
def test_updating_steps_read_nothing_back_from_the_fitting_cores(
    cls: type, options: dict, fitting: str
) -> None:
    reads = _updating_steps(cls, options, fitting, steps=3)
    assert reads.in_cores() == {}


def test_kron_balancing_step_reads_nothing_back() -> None:
    """The 100th update also rescales the factors; that path must not read either."""
    reads = _updating_steps(psgd.Kron, {}, "whiten", steps=100)
    assert reads.in_cores() == {}


def test_the_counter_sees_a_core_read() -> None:
    """The mode above would pass vacuously if it missed reads: it must see this one."""
    with HostReads() as reads:
        float(kron.apply_factors([torch.eye(2)], torch.ones(2)).sum())
    assert sum(reads.sites.values()) == 1


def test_spd_norm_lower_bound_of_a_zero_or_negative_diagonal_is_zero() -> None:
    assert float(spd_norm_lower_bound(torch.zeros(3, 3))) == 0.0
    assert float(spd_norm_lower_bound(-torch.eye(3))) == 0.0
    a = torch.tensor([[2.0, 1.0], [1.0, 2.0]])
    assert 2.0 <= float(spd_norm_lower_bound(a)) <= 3.0 + 1e-6


def test_procrustes_step_leaves_a_symmetric_q_exactly_as_it_is() -> None:
    q = torch.tensor([[2.0, 0.5], [0.5, 1.0]])
    assert torch.equal(procrustes_step(q), q)


@pytest.mark.parametrize("geometry", kron.GEOMETRIES)
def test_kron_fit_skips_factors_when_the_pair_overflows(geometry: str) -> None:
    """A non-finite ℓ (here an infinite Hv) leaves every factor and bound as they were."""
    gen = torch.Generator().manual_seed(3)
    factors = [torch.eye(3) + 0.1 * torch.randn(3, 3, generator=gen).triu(), torch.ones(4)]
    precond = kron.precondition_factors(factors)
    bounds = torch.tensor([2.0, 3.0])
    before = [f.clone() for f in factors], bounds.clone()
    h = torch.randn(3, 4, generator=gen)
    h[1, 2] = float("inf")
    kron.fit(factors, precond, bounds, torch.randn(3, 4, generator=gen), h, 0.1, geometry)
    assert all(torch.equal(a, b) for a, b in zip(factors, before[0]))
    assert torch.equal(bounds, before[1])


def test_kron_fit_skips_a_zero_pair_but_moves_on_a_usable_one() -> None:
    factors, bounds = [torch.eye(2) * 2, torch.ones(3)], torch.zeros(2)
    precond = kron.precondition_factors(factors)
    kron.fit(factors, precond, bounds, torch.zeros(2, 3), torch.zeros(2, 3), 0.1, "EQ")
    assert torch.equal(factors[0], torch.eye(2) * 2) and torch.equal(bounds, torch.zeros(2))
    kron.fit(factors, precond, bounds, torch.ones(2, 3), torch.ones(2, 3), 0.1, "EQ")
    assert not torch.equal(factors[0], torch.eye(2) * 2) and bool((bounds > 0).all())


def test_kron_balance_leaves_factors_alone_when_one_is_zero() -> None:
    factors = [torch.zeros(2, 2), torch.full((3,), 4.0)]
    kron.balance(factors)
    assert torch.equal(factors[0], torch.zeros(2, 2)) and torch.equal(
        factors[1], torch.full((3,), 4.0)
    )
    usable = [torch.eye(2), torch.full((3,), 4.0)]
    kron.balance(usable)
    assert float(usable[0].abs().max()) == pytest.approx(float(usable[1].abs().max()))


@pytest.mark.parametrize("normalizer", lra.NORMALIZERS)
def test_lra_fit_leaves_everything_when_the_pair_overflows(normalizer: str) -> None:
    gen = torch.Generator().manual_seed(4)
    u, v = torch.randn(5, 2, generator=gen), torch.randn(5, 2, generator=gen)
    d, bounds = torch.ones(5), torch.tensor([1.0, 2.0, 3.0])
    before = [t.clone() for t in (u, v, d, bounds)]
    h = torch.randn(5, generator=gen)
    h[0] = float("nan")
    probe = torch.randn(5, generator=gen)
    lra.fit(u, v, d, bounds, probe, h, 0.1, True, balancing="none", normalizer=normalizer)
    assert all(torch.equal(a, b) for a, b in zip((u, v, d, bounds), before))


def test_lra_balance_leaves_a_zero_v_exactly_as_it_is() -> None:
    u, v = torch.randn(5, 2, generator=torch.Generator().manual_seed(5)), torch.zeros(5, 2)
    u0 = u.clone()
    lra.balance(u, v)
    assert torch.equal(u, u0) and torch.equal(v, torch.zeros(5, 2))


def test_loaded_kron_state_keeps_its_update_counter_on_the_host() -> None:
    """Factors follow the parameters' device; the counter Python reads stays on the host.

    The meta device stands in for a GPU: a loaded tensor lands wherever the parameter is.
    """
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = psgd.Kron(model.parameters(), preconditioner_update_probability=1.0)
    for _ in range(2):
        opt.zero_grad()
        model(torch.randn(4, 3)).sum().backward()
        opt.step()
    elsewhere = torch.nn.Linear(3, 2, device="meta")
    loaded = psgd.Kron(elsewhere.parameters())
    loaded.load_state_dict(opt.state_dict())
    state = loaded.state[elsewhere.weight]
    assert state["updates"].device.type == "cpu" and state["Q0"].device.type == "meta"
