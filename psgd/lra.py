"""Low-rank approximation ("LRA", formerly UVd) preconditioner: the functional core.

`Q = (I + UVᵀ) diag(d)` with `U, V ∈ R^{n×r}`, so `P = QᵀQ` can have eigenvalues far
above *and* below the diagonal part: it fits both tails of the Hessian spectrum with
`(2r+1)n` floats. For a fixed V the matrices `I + UVᵀ` form a group (and symmetrically
for fixed U), so one fitting step moves d, then U or V (a coin flip), each on its group.
`r = 0` is exactly the diagonal preconditioner.

Three choices are options because the 2022 reference ("UVd", the seed paper's code) makes
them differently and the delayed-XOR gap to it is unexplained (issue 16): how U/V are
balanced (`BALANCES`), how a fit's step is normalised (`NORMALIZERS`) and, in
`psgd.LRA`, how U and V start. The first of each is this library's default.
"""

from __future__ import annotations

import torch
from torch import Tensor

from psgd import diag
from psgd.linalg import lipschitz_step, usable_bound

#: "rotate": equalise the norms and rotate UᵀU towards VᵀV before every fit (the 2025
#: reference); "norms": equalise only the norms (the 2022 reference, which does it with
#: probability 0.01 per fit: the caller draws that); "none": leave U and V as they are.
BALANCES = ("rotate", "norms", "none")
#: "lipschitz": μ / L with L a smoothed running bound (`lipschitz_step`); "gradient_norm":
#: μ / this fit's gradient size: max|∇d| for d, ‖∇U Vᵀ‖_F for U, ‖U ∇Vᵀ‖_F for V (the
#: seed-paper-era "1st" normaliser, reference §2.4).
NORMALIZERS = ("lipschitz", "gradient_norm")


def apply(u: Tensor, v: Tensor, d: Tensor, g: Tensor) -> Tensor:
    """`P g = d⊙((I + VUᵀ)((I + UVᵀ)(d⊙g)))`, O(nr)."""
    x = d * g
    y = x + u @ (v.T @ x)
    return d * (y + v @ (u.T @ y))


def balance(u: Tensor, v: Tensor, rotate: bool = True) -> None:
    """Equalise U and V in place; `UVᵀ` changes only by O(E⁴) (not at all without `rotate`).

    Why: `UVᵀ = (U/ρ)(ρV)ᵀ = (UR)(VR)ᵀ`; letting the two drift apart makes the
    alternating steps badly scaled. First match their norms, then rotate `UᵀU` towards
    `VᵀV` with `U(I − E + E²/2)` and `V(I + E + E²/2)`, whose product is `I + E⁴/4`.
    """
    uu, vv = u.T @ u, v.T @ v
    tr_u, tr_v = uu.trace(), vv.trace()
    # A zero factor (V starts at 0) leaves both as they are: ρ = 1 and E = 0.
    usable = (tr_u > 0) & (tr_v > 0)
    rho = torch.where(usable, tr_u / tr_v, 1.0) ** 0.25
    u.div_(rho)
    v.mul_(rho)
    if not rotate:
        return
    uu, vv = uu / rho**2, vv * rho**2
    e = torch.where(usable, 0.1 * (uu - vv) / (uu.trace() + vv.trace()), 0.0)
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
    balancing: str = "rotate",
    normalizer: str = "lipschitz",
) -> None:
    """One fitting step from the pair (probe, h), all in place.

    `lipschitz` holds three fp32 bounds (d, U, V); with the "gradient_norm" normaliser,
    the last step's normaliser of each. `update_u` picks which of U and V moves this
    time; the caller draws it (and whether to balance) so that runs stay reproducible.
    """
    rank = u.shape[1]
    if rank == 0:
        if normalizer == "lipschitz":
            diag.fit(d, lipschitz[0], probe, h, lr, lipschitz_beta)
        else:
            _fit_d(d, (d * h).square(), (probe / d).square(), lipschitz, lr, 0.0, normalizer)
        return
    if balancing != "none":
        balance(u, v, rotate=balancing == "rotate")
    eye = torch.eye(rank, dtype=u.dtype, device=u.device)
    qh = d * h
    qh = qh + u @ (v.T @ qh)
    ph = d * (qh + v @ (u.T @ qh))
    # Woodbury: (I + VUᵀ)⁻¹x = x − V S⁻ᵀ Uᵀx and (I + UVᵀ)⁻¹y = y − U S⁻¹ Vᵀy, S = I + VᵀU.
    s = (eye + v.T @ u).float()
    x = probe / d
    qinv_t_probe = x - v @ _solve(s.T, (u.T @ x).float()).to(u.dtype)
    y = qinv_t_probe
    pinv_probe = (y - u @ _solve(s, (v.T @ y).float()).to(u.dtype)) / d

    _fit_d(d, ph * h, probe * pinv_probe, lipschitz, lr, lipschitz_beta, normalizer)

    alpha, beta = qh, qinv_t_probe
    other = v if update_u else u
    moved = u if update_u else v
    a_other, b_other = alpha @ other, beta @ other
    grad = torch.outer(alpha, a_other) - torch.outer(beta, b_other)
    # other·otherᵀα and other·otherᵀβ: the moved factor's gradient times the other's
    # transpose is the rank-2 matrix α(OOᵀα)ᵀ − β(OOᵀβ)ᵀ (U step; its transpose for V).
    oa, ob = other @ a_other, other @ b_other
    if normalizer == "lipschitz":
        ell = alpha.norm() * oa.norm() + beta.norm() * ob.norm()
    else:
        # Its Frobenius norm in closed form, from inner products of n-vectors.
        cross = alpha.dot(beta) * oa.dot(ob)
        squared = alpha.dot(alpha) * oa.dot(oa) + beta.dot(beta) * ob.dot(ob) - 2 * cross
        ell = squared.clamp(min=0).sqrt()
    # U moves as U − μ∇(I + VᵀU); V as V − μ(I + VUᵀ)∇ (each the relative step on its group).
    direction = grad @ (eye + v.T @ u) if update_u else grad + v @ (u.T @ grad)
    index = 1 if update_u else 2
    _step_in_place(moved, direction, lipschitz, index, ell.float(), lr, lipschitz_beta, normalizer)


def _solve(a: Tensor, b: Tensor) -> Tensor:
    """`A⁻¹b` without torch's singularity check, which reads a flag back (a GPU sync).

    A singular S gives non-finite values, and the fit's guard then skips the step.
    """
    return torch.linalg.solve_ex(a, b, check_errors=False).result


def _fit_d(
    d: Tensor,
    term1: Tensor,
    term2: Tensor,
    lipschitz: Tensor,
    lr: float,
    lipschitz_beta: float,
    normalizer: str,
) -> None:
    """The diagonal's step `d ← d − (μ/N)(term1 − term2)⊙d`, term1 = Ph⊙h, term2 = v⊙P⁻¹v."""
    grad = term1 - term2
    lipschitz_bound = normalizer == "lipschitz"
    ell = term1.abs().max() + term2.abs().max() if lipschitz_bound else grad.abs().max()
    _step_in_place(d, grad * d, lipschitz, 0, ell.float(), lr, lipschitz_beta, normalizer)


def _step_in_place(
    x: Tensor,
    direction: Tensor,
    lipschitz: Tensor,
    index: int,
    ell: Tensor,
    lr: float,
    lipschitz_beta: float,
    normalizer: str,
) -> None:
    usable = usable_bound(ell)  # a zero probe or an overflow leaves x as it is
    if normalizer == "lipschitz":
        step = lipschitz_step(lipschitz[index], ell, lr, lipschitz_beta, x.dtype, usable)
    else:
        lipschitz[index] = torch.where(usable, ell, lipschitz[index])
        step = (lr / ell).to(x.dtype)
    # Both masked, not x − 0·direction: the direction or the step may be inf or NaN.
    x.sub_(torch.where(usable, direction, 0) * torch.where(usable, step, 0))


def dense_q(u: Tensor, v: Tensor, d: Tensor) -> Tensor:
    """Q as a dense matrix (for inspection and tests)."""
    eye = torch.eye(d.numel(), dtype=d.dtype, device=d.device)
    return (eye + u @ v.T) * d
