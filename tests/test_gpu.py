"""The optimizers on CUDA (skipped without a GPU): same results as on CPU, state on device."""

from __future__ import annotations

import copy

import pytest
import torch
from regression_step import regression_step

import psgd

pytestmark = pytest.mark.gpu

FAMILIES = [psgd.Kron, psgd.LRA, psgd.XMat, psgd.Diag, psgd.Dense]


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))


def _train(model: torch.nn.Module, opt: torch.optim.Optimizer, device: str, newton: bool) -> None:
    gen = torch.Generator().manual_seed(1)
    for _ in range(20):
        x = torch.randn(16, 6, generator=gen).to(device)
        y = torch.randn(16, 2, generator=gen).to(device)
        regression_step(model, opt, x, y, newton)


@pytest.mark.parametrize("cls", FAMILIES)
@pytest.mark.parametrize("fitting", ["whiten", "newton"])
def test_cuda_training_stays_finite_and_keeps_state_on_device(cls: type, fitting: str) -> None:
    model = _model().cuda()
    opt = cls(model.parameters(), lr=0.01, fitting=fitting, preconditioner_update_probability=1.0)
    _train(model, opt, "cuda", fitting == "newton")
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
    tensors = [t for s in opt.state.values() for k, t in s.items() if k not in ("step", "updates")]
    assert tensors and all(t.is_cuda for t in tensors)
    spectra = opt.preconditioner_spectra()
    assert spectra and all(v.device.type == "cpu" for v in spectra.values())


def test_cuda_state_dict_round_trip_is_bit_identical() -> None:
    model = _model().cuda()
    opt = psgd.Kron(model.parameters(), lr=0.01, seed=5, preconditioner_update_probability=0.5)
    _train(model, opt, "cuda", False)
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    _train(model, opt, "cuda", False)
    expected = [p.detach().clone() for p in model.parameters()]
    other = _model().cuda()
    other.load_state_dict(saved_model)
    other_opt = psgd.Kron(
        other.parameters(), lr=0.01, seed=99, preconditioner_update_probability=0.5
    )
    other_opt.load_state_dict(saved_opt)
    _train(other, other_opt, "cuda", False)
    assert all(torch.equal(a, b) for a, b in zip(expected, other.parameters()))
    assert all(
        s["updates"].device.type == "cpu" for s in other_opt.state.values() if "updates" in s
    )


@pytest.mark.parametrize("cls", FAMILIES)
@pytest.mark.parametrize("fitting", ["whiten", "newton"])
def test_cuda_updating_steps_never_synchronise(cls: type, fitting: str) -> None:
    """The fitting cores decide on the device (test_host_syncs.py counts the same on CPU)."""
    model = _model().cuda()
    opt = cls(
        model.parameters(),
        lr=0.01,
        fitting=fitting,
        preconditioner_update_probability=1.0,
        preconditioner_init_scale=1.0,
    )
    x, y = torch.randn(16, 6, device="cuda"), torch.randn(16, 2, device="cuda")
    regression_step(model, opt, x, y, fitting == "newton")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            regression_step(model, opt, x, y, fitting == "newton")
    finally:
        torch.cuda.set_sync_debug_mode("default")
