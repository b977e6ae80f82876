"""Low-rank approximation ("LRA", formerly UVd) preconditioner: the functional core.

`Q = (I + UVᵀ) diag(d)` with `U, V ∈ R^{n×r}`, so `P = QᵀQ` can have eigenvalues far
above *and* below the diagonal part: it fits both tails of the Hessian spectrum with
`(2r+1)n` floats. For a fixed V the matrices `I + UVᵀ` form a group (and symmetrically
for fixed U), so one fitting step moves d, then U or V (a coin flip), each on its group.
`r = 0` is exactly the diagonal preconditioner.
"""

from __future__ import annotations

import torch
from torch import Tensor

from psgd import diag
from psgd.linalg import lipschitz_step


def apply(u: Tensor, v: Tensor, d: Tensor, g: Tensor) -> Tensor:
    """`P g = d⊙((I + VUᵀ)((I + UVᵀ)(d⊙g)))`, O(nr)."""
    x = d * g
    y = x + u @ (v.T @ x)
    return d * (y + v @ (u.T @ y))


def balance(u: Tensor, v: Tensor) -> None:
    """Equalise U and V in place; `UVᵀ` changes only by O(E⁴).

    Why: `UVᵀ = (U/ρ)(ρV)ᵀ = (UR)(VR)ᵀ`; letting the two drift apart makes the
    alternating steps badly scaled. First match their norms, then rotate `UᵀU` towards
    `VᵀV` with `U(I − E + E²/2)` and `V(I + E + E²/2)`, whose product is `I + E⁴/4`.
    """
    uu, vv = u.T @ u, v.T @ v
    tr_u, tr_v = uu.trace(), vv.trace()
    if tr_u <= 0 or tr_v <= 0:
        return
    rho = (tr_u / tr_v) ** 0.25
    u.div_(rho)
    v.mul_(rho)
    uu, vv = uu / rho**2, vv * rho**2
    e = 0.1 * (uu - vv) / (uu.trace() + vv.trace())
    eye = torch.eye(e.shape[0], dtype=e.dtype, device=e.device)
    e2 = e @ e / 2
    u.copy_(u @ (eye - e + e2))
    v.copy_(v @ (eye + e + e2))


def fit(
    u: Tensor,
    v: Tensor,
    d: Tensor,
    lipschitz: Tensor,
    probe: Tensor,
    h: Tensor,
    lr: float,
    update_u: bool,
    lipschitz_beta: float = 0.9,
) -> None:
    """One fitting step from the pair (probe, h), all in place.

    `lipschitz` holds three fp32 bounds (d, U, V). `update_u` picks which of U and V
    moves this time; the caller draws it so that runs stay reproducible.
    """
    rank = u.shape[1]
    if rank == 0:
        diag.fit(d, lipschitz[0], probe, h, lr, lipschitz_beta)
        return
    balance(u, v)
    eye = torch.eye(rank, dtype=u.dtype, device=u.device)
    qh = d * h
    qh = qh + u @ (v.T @ qh)
    ph = d * (qh + v @ (u.T @ qh))
    # Woodbury: (I + VUᵀ)⁻¹x = x − V S⁻ᵀ Uᵀx and (I + UVᵀ)⁻¹y = y − U S⁻¹ Vᵀy, S = I + VᵀU.
    s = (eye + v.T @ u).float()
    x = probe / d
    qinv_t_probe = x - v @ torch.linalg.solve(s.T, (u.T @ x).float()).to(u.dtype)
    y = qinv_t_probe
    pinv_probe = (y - u @ torch.linalg.solve(s, (v.T @ y).float()).to(u.dtype)) / d

    term1, term2 = ph * h, probe * pinv_probe
    ell_d = (term1.abs().max() + term2.abs().max()).float()
    _step_in_place(d, (term1 - term2) * d, lipschitz, 0, ell_d, lr, lipschitz_beta)

    alpha, beta = qh, qinv_t_probe
    other = v if update_u else u
    moved = u if update_u else v
    a_other, b_other = alpha @ other, beta @ other
    grad = torch.outer(alpha, a_other) - torch.outer(beta, b_other)
    ell = (alpha.norm() * (other @ a_other).norm() + beta.norm() * (other @ b_other).norm()).float()
    # U moves as U − μ∇(I + VᵀU); V as V − μ(I + VUᵀ)∇ (each the relative step on its group).
    direction = grad @ (eye + v.T @ u) if update_u else grad + v @ (u.T @ grad)
    _step_in_place(moved, direction, lipschitz, 1 if update_u else 2, ell, lr, lipschitz_beta)


def _step_in_place(
    x: Tensor,
    direction: Tensor,
    lipschitz: Tensor,
    index: int,
    ell: Tensor,
    lr: float,
    lipschitz_beta: float,
) -> None:
    if not torch.isfinite(ell) or ell <= 0:
        return
    x.sub_(lipschitz_step(lipschitz[index], ell, lr, lipschitz_beta, x.dtype) * direction)


def dense_q(u: Tensor, v: Tensor, d: Tensor) -> Tensor:
    """Q as a dense matrix (for inspection and tests)."""
    eye = torch.eye(d.numel(), dtype=d.dtype, device=d.device)
    return (eye + u @ v.T) * d
