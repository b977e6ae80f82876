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
    entry, which keeps triangular factors' diagonals positive (reference §1.6).
    """
    diag_max = a.diagonal().max()
    if diag_max <= 0:
        return diag_max.clamp(min=0)
    scaled = a / diag_max
    row = scaled[torch.argmax(scaled.square().sum(dim=1))]
    x = scaled @ row
    x = x / x.norm()
    estimate = (scaled @ x).norm() * diag_max
    return torch.maximum(estimate, diag_max)


def lipschitz_step(
    lipschitz: Tensor, ell: Tensor, lr: float, beta: float, dtype: torch.dtype
) -> Tensor:
    """The step size `lr / L` of a Lie-group fitting step, after updating the smoothed
    Lipschitz bound `L ← max(βL + (1−β)ℓ, ℓ)` in place (reference §1.4).

    Why both: the average keeps steps steady when ℓ (this step's bound estimate) is
    noisy, the max keeps the step below `lr / ℓ` when the curvature jumps. `lipschitz`
    is fp32, 0-d, element-wise or a view of one entry of a larger bound tensor; the
    floor at fp32's smallest normal number keeps a zero bound (a zero probe) finite.
    """
    bound = torch.maximum(beta * lipschitz + (1 - beta) * ell, ell)
    lipschitz.copy_(bound)
    return lr / bound.clamp(min=torch.finfo(torch.float32).tiny).to(dtype)


def procrustes_step(q: Tensor, max_step: float = 0.125) -> Tensor:
    """Rotate Q towards a symmetric matrix without changing QᵀQ (to 4th order).

    Why: the Q0.5EQ1.5 geometry assumes Q ≈ Qᵀ; round-off and the non-symmetric update
    drift away from that. One step `Q ← (I + αR + α²R²/2) Q` with the skew matrix
    `R = Qᵀ − Q` (normalised by its Frobenius norm, an upper bound of its spectral norm)
    maximises tr(UQ) along R; `α ≤ max_step` keeps U orthogonal to ‖αR‖⁴/4.
    """
    r = q.T - q
    r_norm = r.norm()
    if r_norm == 0:
        return q
    r = r / r_norm
    rq = r @ q
    rrq = r @ rq
    # Traces in at least fp32: the line search is the round-off-sensitive part.
    tr_rq = rq.diagonal().sum(dtype=torch.float32)
    tr_rrq = rrq.diagonal().sum(dtype=torch.float32)
    alpha = max_step
    if tr_rrq < 0:
        alpha = min(float(-tr_rq / tr_rrq), max_step)
    return q + alpha * rq + (0.5 * alpha * alpha) * rrq
