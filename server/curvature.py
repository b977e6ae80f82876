"""What a spectrum snapshot sets P against: the exact Hessian, on problems small enough.

PSGD's Newton fit aims at P = |H|⁻¹. On small problems the runner reports |H|⁻¹'s
eigenvalues and one number saying how far P is from it, so a user can tell a slow fit
(PSGD fits the flat directions slowly, README "Inspection") from a wrong one.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from server.tasks.base import Task

#: the largest parameter count for which a snapshot forms the exact Hessian
HESSIAN_LIMIT = 64
#: Hessian eigenvalues are taken as at least this in absolute value (|H|⁻¹ stays finite)
CURVATURE_FLOOR = 1e-12
#: eigenvalues of |H|^½ P |H|^½ are taken as at least this: the error stays finite (≤ 30)
_RATIO_FLOOR = 1e-30


def small_hessian(task: Task) -> Tensor | None:
    """The exact Hessian (float64, CPU) when the task has at most `HESSIAN_LIMIT` parameters
    and reports one, else None."""
    if sum(p.numel() for p in task.params) > HESSIAN_LIMIT:
        return None
    hessian = task.hessian()
    return None if hessian is None else hessian.detach().double().cpu()


def inverse_hessian_spectrum(hessian: Tensor) -> list[float]:
    """The sorted eigenvalues of |H|⁻¹."""
    eigenvalues = torch.linalg.eigvalsh(hessian)
    return sorted((1.0 / eigenvalues.abs().clamp(min=CURVATURE_FLOOR)).tolist())


def fit_error(preconditioner: Tensor, hessian: Tensor) -> float:
    """How far P is from |H|⁻¹, in decades, in its worst direction: max |log10 λ| over the
    eigenvalues λ of |H|^½ P |H|^½ (the eigenvalues of P|H|).

    0 when P = |H|⁻¹; 1 when P is a factor 10 too large or too small along some direction;
    unlike ‖P|H| − I‖, it does not saturate at 1 however much too small P is.
    """
    eigenvalues, vectors = torch.linalg.eigh(hessian)
    root = (vectors * eigenvalues.abs().clamp(min=CURVATURE_FLOOR).sqrt()) @ vectors.T
    product = root @ preconditioner.double().cpu() @ root
    ratios = torch.linalg.eigvalsh((product + product.T) / 2).clamp(min=_RATIO_FLOOR)
    return float(ratios.log10().abs().max())


def fit_along_eigenvectors(preconditioner: Tensor, hessian: Tensor) -> list[float]:
    """log10(|λ| uᵀPu) along each unit eigenvector u of H (eigenvalue λ), in order of
    increasing |λ|: 0 where P matches |H|⁻¹ along u, −2 where P is 100× too small there.

    Why: `fit_error` names the worst direction only; the flattest direction (the first
    value) is the one PSGD is said to fit slowly, and this shows it beside the steepest.
    """
    eigenvalues, vectors = torch.linalg.eigh(hessian)
    magnitudes = eigenvalues.abs().clamp(min=CURVATURE_FLOOR)
    order = torch.argsort(magnitudes)
    directions = vectors[:, order]
    along = (directions * (preconditioner.double().cpu() @ directions)).sum(0)
    return (along * magnitudes[order]).clamp(min=_RATIO_FLOOR).log10().tolist()


class Fit(NamedTuple):
    """P against |H|⁻¹: the worst direction (`fit_error`) and every eigenvector's."""

    error: float
    along_eigenvectors: list[float]


def preconditioner_fit(opt: Any, hessian: Tensor | None) -> Fit | None:
    """The optimizer's P against `hessian`; None for an optimizer without a preconditioner
    matrix (the baselines) or without a Hessian."""
    matrix_of = getattr(opt, "preconditioner_matrix", None)
    if hessian is None or matrix_of is None:
        return None
    preconditioner = matrix_of()
    return Fit(fit_error(preconditioner, hessian), fit_along_eigenvectors(preconditioner, hessian))
