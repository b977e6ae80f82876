"""Kronecker-factored preconditioner: the functional core.

For a tensor of shape `(d₁, …, d_k)` (singleton dims squeezed away) the preconditioner is
`Q = Q₁ ⊗ … ⊗ Q_k` acting on the row-major flattening, so `P = QᵀQ = P₁ ⊗ … ⊗ P_k` with
`P_i = Q_iᵀQ_i`. Each `Q_i` is dense (`d_i × d_i`) or diagonal (stored as a vector). Applying
a factor means multiplying mode i of the tensor by it.

The fit minimises `E[hᵀPh + vᵀP⁻¹v]` (Newton: `h = Hv`; whitening: `h = g`, with v either
drawn or integrated out, `E[vvᵀ] = I`) by one Lie-group step per factor. The geometry picks
the local coordinate of that step (reference §2.5–2.6):

* ``"EQ"``: `dQ = EQ`, upper-triangular factors, needs triangular solves (the classic PSGD).
* ``"QEQ"``: `dQ = QEQ`, inverse-free, general factors.
* ``"Q0.5EQ1.5"``: `dQ = Q^½EQ^{3/2}`, inverse-free, factors kept symmetric by a Procrustes
  rotation (the reference default).
* ``"QUAD"``: a symmetric quadratic-form update, inverse-free.

Diagonal factors use the same terms in every geometry: `q ← q − (μ/L)(t₁ − t₂)⊙q`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from psgd.linalg import lipschitz_step, procrustes_step, spd_norm_lower_bound, usable_bound
from psgd.spectra import SpectrumSummary, kron_summary

GEOMETRIES = ("EQ", "QEQ", "Q0.5EQ1.5", "QUAD")
MEMORY_SAVE_MODES = (None, "smart_one_diag", "one_diag", "all_diag")


def working_shape(shape: Sequence[int]) -> tuple[int, ...]:
    """The tensor's shape with singleton dims dropped; a scalar works as shape (1,)."""
    squeezed = tuple(d for d in shape if d != 1)
    return squeezed or (1,)


def factor_kinds(
    shape: Sequence[int],
    max_size: float = math.inf,
    max_skew: float = 1.0,
    memory_save_mode: str | None = None,
) -> list[str]:
    """Choose a dense or diagonal factor for each (squeezed) dimension.

    A dim is diagonal when `d > max_size` or `d² > max_skew · N` (N = numel), so with the
    default `max_skew=1` a matrix gets a dense factor on its smaller side and 1-D tensors
    are diagonal. A scalar (all dims 1) gets ``["scalar"]``. `memory_save_mode` then makes
    more factors diagonal: ``"one_diag"`` the largest dim, ``"smart_one_diag"`` the largest
    only if strictly larger than the runner-up, ``"all_diag"`` every dim.
    """
    dims = [d for d in shape if d != 1]
    if not dims:
        return ["scalar"]
    numel = math.prod(dims)
    kinds = ["diag" if d > max_size or d * d > max_skew * numel else "dense" for d in dims]
    if memory_save_mode == "all_diag":
        kinds = ["diag"] * len(dims)
    elif memory_save_mode in ("one_diag", "smart_one_diag"):
        ranked = sorted(range(len(dims)), key=lambda i: dims[i], reverse=True)
        largest = ranked[0]
        strictly = len(dims) == 1 or dims[largest] > dims[ranked[1]]
        if memory_save_mode == "one_diag" or strictly:
            kinds[largest] = "diag"
    return kinds


def init_factors(
    shape: Sequence[int],
    kinds: Sequence[str],
    scale: float,
    dtype: torch.dtype,
    device: torch.device,
) -> list[Tensor]:
    """Factors whose Kronecker product is `scale · I` (each factor gets `scale^{1/k}`)."""
    dims = working_shape(shape)
    each = scale ** (1.0 / len(dims))
    return [
        torch.full((d,), each, dtype=dtype, device=device)
        if kind != "dense"
        else each * torch.eye(d, dtype=dtype, device=device)
        for d, kind in zip(dims, kinds)
    ]


def mode_product(x: Tensor, factor: Tensor, mode: int) -> Tensor:
    """Multiply mode `mode` of `x` by a dense factor (matrix) or a diagonal one (vector)."""
    if factor.dim() == 1:
        view = [1] * x.dim()
        view[mode] = -1
        return x * factor.view(view)
    return torch.movedim(torch.tensordot(factor, x, dims=([1], [mode])), 0, mode)


def apply_factors(factors: Sequence[Tensor], x: Tensor) -> Tensor:
    """`(F₁ ⊗ … ⊗ F_k) x` for x already in the working shape."""
    for mode, factor in enumerate(factors):
        x = mode_product(x, factor, mode)
    return x


def precondition_factors(factors: Sequence[Tensor]) -> list[Tensor]:
    """The factors of P: `Q_iᵀQ_i` for dense, `q_i²` for diagonal factors."""
    return [q * q if q.dim() == 1 else q.T @ q for q in factors]


def _solve_transposed(factors: Sequence[Tensor], v: Tensor) -> Tensor:
    """`Q⁻ᵀ v` for upper-triangular (EQ) factors: one triangular solve per mode."""
    for mode, q in enumerate(factors):
        if q.dim() == 1:
            v = mode_product(v, 1.0 / q, mode)
            continue
        moved = torch.movedim(v, mode, 0)
        flat = moved.reshape(q.shape[0], -1)
        solved = torch.linalg.solve_triangular(q.T, flat, upper=False)
        v = torch.movedim(solved.reshape(moved.shape), 0, mode)
    return v


def _mode_gram(x: Tensor, mode: int, diagonal: bool) -> Tensor:
    """`x ⋆_mode x`: contract x with itself over every index except `mode`."""
    flat = torch.movedim(x, mode, 0).reshape(x.shape[mode], -1)
    return flat.square().sum(dim=1) if diagonal else flat @ flat.T


def _update_dense(q: Tensor, err: Tensor, step: float | Tensor, geometry: str) -> Tensor:
    if geometry == "EQ":
        return q - step * (torch.triu(err) @ q)
    if geometry == "QEQ":
        return q - step * (q @ err)
    if geometry == "Q0.5EQ1.5":
        return procrustes_step(q - step * (err @ q))
    half = step / 2
    p = q - half * (err @ q)
    p = p - half * (p @ err)
    return (p + p.T) / 2


def fit(
    factors: list[Tensor],
    preconditioner: list[Tensor],
    lipschitz: Tensor,
    v: Tensor | None,
    h: Tensor,
    lr: float,
    geometry: str,
    lipschitz_beta: float = 0.9,
) -> None:
    """One fitting step of all factors, in place, from the pair (v, h).

    `preconditioner` holds the current factors of P (`precondition_factors(factors)`) and
    is refreshed. `v=None` integrates v out (whitening: `E[v ⋆_i v] = (N/d_i) I`); the EQ
    geometry needs an explicit v. `lipschitz` (fp32, one entry per factor) is the smoothed
    Lipschitz bound `L ← max(βL + (1−β)ℓ, ℓ)` that normalises each step to `lr / L`.
    """
    if geometry == "EQ":
        if v is None:
            raise ValueError("the EQ geometry needs an explicit probe v")
        x1, x2 = apply_factors(factors, h), _solve_transposed(factors, v)
    else:
        x1, x2 = apply_factors(preconditioner, h), v
    numel = h.numel()
    for mode, q in enumerate(factors):
        diagonal = q.dim() == 1
        d = q.shape[0]
        t1 = _mode_gram(x1, mode, diagonal)
        if x2 is None:
            identity_weight = numel / d
            t2 = (
                torch.full_like(t1, identity_weight)
                if diagonal
                else identity_weight * torch.eye(d, dtype=t1.dtype, device=t1.device)
            )
        else:
            t2 = _mode_gram(x2, mode, diagonal)
        if diagonal:
            ell = (t1 + t2).max()
        elif x2 is None:
            ell = spd_norm_lower_bound(t1) + identity_weight
        else:
            ell = spd_norm_lower_bound(t1 + t2)
        ell = ell.float()
        usable = usable_bound(ell)  # a zero probe or an overflow leaves this factor as it is
        step = lipschitz_step(lipschitz[mode], ell, lr, lipschitz_beta, q.dtype, usable)
        err = t1 - t2
        moved = q - step * err * q if diagonal else _update_dense(q, err, step, geometry)
        q.copy_(torch.where(usable, moved, q))
    for p, q in zip(preconditioner, precondition_factors(factors)):
        p.copy_(q)


def balance(factors: list[Tensor]) -> None:
    """Rescale factors to equal max-abs entries; their Kronecker product is unchanged.

    Why: `cQ₁ ⊗ Q₂/c` is the same Q, so the individual scales drift freely and can
    under- or overflow over long runs.
    """
    if len(factors) < 2:
        return
    sizes = torch.stack([q.abs().max().double() for q in factors])
    usable = torch.all(usable_bound(sizes))  # a zero or overflowing factor: leave them all
    target = sizes.log().mean().exp()
    for q, size in zip(factors, sizes):
        q.mul_(torch.where(usable, target / size, 1.0).to(q.dtype))


def spectrum(preconditioner: Sequence[Tensor], max_values: int) -> SpectrumSummary:
    """Eigenvalues of P (sorted, or `max_values` quantiles) from its factors' eigenvalues."""
    eigenvalues = [p if p.dim() == 1 else torch.linalg.eigvalsh(p.double()) for p in preconditioner]
    return kron_summary(eigenvalues, max_values)


def dense_matrix(preconditioner: Sequence[Tensor]) -> Tensor:
    """P as a dense matrix acting on the row-major flattening."""
    matrix = torch.ones(1, 1, dtype=preconditioner[0].dtype, device=preconditioner[0].device)
    for p in preconditioner:
        matrix = torch.kron(matrix, torch.diag(p) if p.dim() == 1 else p)
    return matrix
