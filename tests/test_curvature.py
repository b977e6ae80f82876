"""The fit error of P against |H|⁻¹ (server/curvature.py) and its place in the events."""

from __future__ import annotations

import math

import pytest
import torch

from server.curvature import fit_error, inverse_hessian_spectrum
from server.events import Spectrum
from server.runner import JobSpec, run_job


def _rotation(n: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))[0]


def _matrix(eigenvalues: list[float], rotation: torch.Tensor) -> torch.Tensor:
    """O diag(λ) Oᵀ."""
    return rotation @ torch.diag(torch.tensor(eigenvalues, dtype=torch.float64)) @ rotation.T


def test_the_exact_inverse_absolute_hessian_has_no_fit_error() -> None:
    rotation = _rotation(4)
    hessian = _matrix([1000.0, 3.0, -0.5, 0.4], rotation)  # indefinite, κ = 2500
    inverse_abs = _matrix([1e-3, 1 / 3, 2.0, 2.5], rotation)
    assert fit_error(inverse_abs, hessian) == pytest.approx(0.0, abs=1e-10)


def test_the_fit_error_counts_decades_in_the_worst_direction() -> None:
    rotation = _rotation(2, seed=1)
    hessian = _matrix([1000.0, 0.4], rotation)
    # the Rosenbrock picture: the stiff direction fitted, the flat one 50× too small
    p = _matrix([1e-3, 2.5 / 50], rotation)
    assert fit_error(p, hessian) == pytest.approx(math.log10(50), rel=1e-9)
    inverse_abs = _matrix([1e-3, 2.5], rotation)
    assert fit_error(10 * inverse_abs, hessian) == pytest.approx(1.0, rel=1e-9)
    assert fit_error(inverse_abs / 100, hessian) == pytest.approx(2.0, rel=1e-9)


def test_the_inverse_hessian_spectrum_is_sorted_and_absolute() -> None:
    hessian = _matrix([4.0, -2.0, 0.5], _rotation(3))
    assert inverse_hessian_spectrum(hessian) == pytest.approx([0.25, 0.5, 2.0])


def _spectra(task: dict, optimizer: dict, steps: int) -> list[Spectrum]:
    events: list = []
    spec = {"task": task, "optimizer": optimizer, "steps": steps, "device": "cpu"}
    run_job(JobSpec.model_validate({**spec, "snapshot_every": max(1, steps // 4)}), events.append)
    return [e for e in events if isinstance(e, Spectrum)]


def test_snapshots_of_small_problems_carry_the_fit_error_of_p() -> None:
    quadratic = {"name": "quadratic", "dim": 4, "condition_number": 10, "dtype": "float64"}
    spectra = _spectra(quadratic, {"name": "psgd-dense"}, 300)
    assert spectra[0].step == 0 and spectra[0].fit_error is None  # no P before step 1
    errors = [e.fit_error for e in spectra[1:]]
    assert all(isinstance(v, float) for v in errors)
    assert errors[-1] < min(1e-3, errors[0])  # dense Newton fits a fixed quadratic's |H|⁻¹
    # a baseline has no P; a task beyond the exact-Hessian limit has no |H|⁻¹
    assert all(e.fit_error is None for e in _spectra(quadratic, {"name": "adam"}, 4))
    big = _spectra({"name": "quadratic", "dim": 100}, {"name": "psgd-dense"}, 4)
    assert all(e.fit_error is None and e.inverse_hessian is None for e in big)
