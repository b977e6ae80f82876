"""Diagonal (Jacobi) preconditioner: the functional core.

`Q = diag(q)`, `P = diag(q²)`. With `a = q⊙h` and `b = v⊘q` one Lie-group step is
`q ← q − (μ/L)(a² − b²)⊙q`; the fixed point `q⁴ = E[v²]/E[h²]` is the equilibration
preconditioner (Newton) or the RMSProp rule `1/sqrt(E[g²])` (whitening). `L` is one
smoothed Lipschitz bound for the whole vector (the reference's rule), or one per
coordinate (``elementwise=True``), which the reference recommends when gradient scales
span many decades: a global bound lets small-scale coordinates crawl (§2.2).
"""

from __future__ import annotations

from torch import Tensor

from psgd.linalg import lipschitz_step


def fit(
    q: Tensor,
    lipschitz: Tensor,
    v: Tensor,
    h: Tensor,
    lr: float,
    lipschitz_beta: float = 0.9,
) -> None:
    """One fitting step of `q` in place.

    `lipschitz` is a 0-d tensor (global normaliser) or has q's shape (element-wise). v is
    drawn, not integrated out: the normaliser is then symmetric in a and b, so its
    correlation with a² cannot bias the fixed point (with `E[b²] = 1/q²` in its place the
    element-wise normaliser settles about 10 % off).
    """
    a2 = (q * h).square()
    b2 = (v / q).square()
    ell = (a2.max() + b2.max() if lipschitz.dim() == 0 else a2 + b2).float()
    step = lipschitz_step(lipschitz, ell, lr, lipschitz_beta, q.dtype)
    q.sub_(step * (a2 - b2) * q)


def apply(q: Tensor, g: Tensor) -> Tensor:
    """`P g = q²⊙g`."""
    return q.square() * g
