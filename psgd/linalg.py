"""Small linear-algebra pieces shared by the preconditioner families, and the one
Lipschitz-normalised step size every fitting core takes.

Everything here is a pure function of tensors, so each piece is tested alone against
dense computations.
"""

from __future__ import annotations

import torch
from torch import Tensor


def spd_norm_lower_bound(a: Tensor) -> Tensor:
    """A cheap lower bound of the largest eigenvalue of a symmetric PSD matrix.

    Why a lower bound: it is used as the Lipschitz normaliser of a Lie-group step; the
    exact norm needs an eigendecomposition, while one power step from the heaviest row
    is within a small factor of it. The result is never below the largest diagonal
    entry, which keeps triangular factors' diagonals positive (reference §1.6). No
    branch reads a value back to the host: a fit runs without device syncs.
    """
    diag_max = a.diagonal().max()
    positive = diag_max > 0
    scaled = a / torch.where(positive, diag_max, 1.0)
    heaviest = torch.argmax(scaled.square().sum(dim=1)).reshape(1)
    row = scaled.index_select(0, heaviest).squeeze(0)
    x = scaled @ row
    x = x / x.norm()
    estimate = (scaled @ x).norm() * diag_max
    return torch.where(positive, torch.maximum(estimate, diag_max), diag_max.clamp(min=0))


def usable_bound(ell: Tensor) -> Tensor:
    """Whether a step's bound ℓ is a finite positive number, as a device tensor.

    Why a tensor: a zero probe or an overflow must skip a fitting step, and deciding
    that on the host would cost a device sync per factor per update; callers keep the
    old values with `torch.where` instead.
    """
    return torch.isfinite(ell) & (ell > 0)


def lipschitz_step(
    lipschitz: Tensor,
    ell: Tensor,
    lr: float,
    beta: float,
    dtype: torch.dtype,
    usable: Tensor | None = None,
) -> Tensor:
    """The step size `lr / L` of a Lie-group fitting step, after updating the smoothed
    Lipschitz bound `L ← max(βL + (1−β)ℓ, ℓ)` in place (reference §1.4).

    Why both: the average keeps steps steady when ℓ (this step's bound estimate) is
    noisy, the max keeps the step below `lr / ℓ` when the curvature jumps. `lipschitz`
    is fp32, 0-d, element-wise or a view of one entry of a larger bound tensor; the
    floor at fp32's smallest normal number keeps a zero bound (a zero probe) finite.
    Where `usable` (see `usable_bound`) is false, L keeps its value.
    """
    bound = torch.maximum(beta * lipschitz + (1 - beta) * ell, ell)
    lipschitz.copy_(bound if usable is None else torch.where(usable, bound, lipschitz))
    return lr / bound.clamp(min=torch.finfo(torch.float32).tiny).to(dtype)


def procrustes_step(q: Tensor, max_step: float = 0.125) -> Tensor:
    """Rotate Q towards a symmetric matrix without changing QᵀQ (to 4th order).

    Why: the Q0.5EQ1.5 geometry assumes Q ≈ Qᵀ; round-off and the non-symmetric update
    drift away from that. One step `Q ← (I + αR + α²R²/2) Q` with the skew matrix
    `R = Qᵀ − Q` (normalised by its Frobenius norm, an upper bound of its spectral norm)
    maximises tr(UQ) along R; `α ≤ max_step` keeps U orthogonal to ‖αR‖⁴/4.
    """
    r = q.T - q
    # A symmetric Q gives R = 0, hence rq = rrq = 0 and Q back unchanged.
    r = r / r.norm().clamp(min=torch.finfo(r.dtype).tiny)
    rq = r @ q
    rrq = r @ rq
    # Traces in at least fp32: the line search is the round-off-sensitive part.
    tr_rq = rq.diagonal().sum(dtype=torch.float32)
    tr_rrq = rrq.diagonal().sum(dtype=torch.float32)
    line_search = (-tr_rq / tr_rrq).double().clamp(max=max_step)
    alpha = torch.where(tr_rrq < 0, line_search, max_step)
    return q + alpha * rq + (0.5 * alpha * alpha) * rrq
