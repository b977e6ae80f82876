"""Eigenvalue summaries of P computed from each family's factors, never from a dense P.

Why: a dense n×n eigendecomposition is O(n³); for a 1,000-parameter LRA preconditioner it
cost more than the training steps it was meant to watch. Each family's structure gives
its spectrum cheaply: diagonal and X-shaped P exactly in O(n); Kronecker P as products of
the factors' eigenvalues; LRA exactly when small, otherwise as an estimate with a proven
bound. A summary says which it is.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class SpectrumSummary:
    """Sorted eigenvalues of one P (float32, CPU), or evenly spaced quantiles of them.

    The values sit at quantile positions `linspace(0, 1, len(values))`. When `exact` is
    False they are an estimate and `rank_error` bounds it: the value at position t lies
    between P's true quantiles at positions t − rank_error and t + rank_error (quantiles
    interpolate linearly between sorted eigenvalues).
    """

    values: Tensor
    exact: bool = True
    rank_error: float = 0.0


def summarize_spectrum(values: Tensor, max_values: int) -> Tensor:
    """Sorted eigenvalues, or `max_values` evenly spaced quantiles of them."""
    values = values.detach().flatten().to(device="cpu", dtype=torch.float64).sort().values
    if values.numel() <= max_values:
        return values.float()
    positions = torch.linspace(0, 1, max_values, dtype=torch.float64)
    return torch.quantile(values, positions).float()


def exact_summary(eigenvalues: Tensor, max_values: int) -> SpectrumSummary:
    return SpectrumSummary(summarize_spectrum(eigenvalues, max_values))


# ---------------------------------------------------------------------------- Kron
# Above this many products the running product set is compressed before it is expanded.
KRON_EXACT_PRODUCTS = 1 << 18
KRON_COMPRESSED_POINTS = 512


def _compress(sorted_logs: Tensor, points: int) -> Tensor:
    """`points` equal-weight quantile points of a sorted sample.

    Point j is the smallest value whose empirical CDF reaches (j + ½)/points, so the
    compressed CDF differs from the sample's by at most 1/(2·points) everywhere.
    """
    count = sorted_logs.numel()
    targets = (torch.arange(points, dtype=torch.float64) + 0.5) / points * count
    index = (torch.ceil(targets) - 1).long().clamp(0, count - 1)
    return sorted_logs[index]


def kron_summary(
    factor_eigenvalues: Sequence[Tensor],
    max_values: int,
    exact_products: int = KRON_EXACT_PRODUCTS,
    points: int = KRON_COMPRESSED_POINTS,
) -> SpectrumSummary:
    """Spectrum of `P₁ ⊗ … ⊗ P_k` from the eigenvalues of its factors.

    Every product `λ₁λ₂…λ_k` is an eigenvalue. Up to `exact_products` of them are
    enumerated exactly. Beyond, before each expansion that would exceed it, the running
    product set (and, if still needed, the next factor) is compressed to `points` quantile
    points. Each compression moves the empirical CDF by at most ε = 1/(2·points), and
    combining with the next factor (a mixture of shifts in log space) cannot increase that
    distance, so after c compressions the CDF is within c·ε of the exact one; `rank_error`
    adds the discreteness of both sets.
    """
    logs = torch.zeros(1, dtype=torch.float64)
    total = 1  # size of the exact product set
    compressions = 0
    for eig in factor_eigenvalues:
        factor = eig.detach().to(device="cpu", dtype=torch.float64).log().sort().values
        total *= factor.numel()
        if logs.numel() * factor.numel() > exact_products and logs.numel() > points:
            logs, compressions = _compress(logs.sort().values, points), compressions + 1
        if logs.numel() * factor.numel() > exact_products and factor.numel() > points:
            factor, compressions = _compress(factor, points), compressions + 1
        logs = (logs[:, None] + factor[None, :]).flatten()
    values = summarize_spectrum(logs.exp(), max_values)
    if not compressions:
        return SpectrumSummary(values)
    kept = logs.numel()
    cdf_distance = compressions / (2 * points)
    rank_error = (cdf_distance * total + 1) / (total - 1) + 1 / (kept - 1)
    return SpectrumSummary(values, exact=False, rank_error=min(rank_error, 1.0))


# ----------------------------------------------------------------------------- LRA
# Up to this many parameters LRA's P is formed (in O(n²r)) and eigendecomposed exactly.
LRA_EXACT_SIZE = 256
# Floats the Krylov basis of the estimate may hold (n × basis width).
_KRYLOV_FLOATS = 4_000_000
_KRYLOV_BLOCKS = 5


class _LraQ:
    """`Q = (I + UVᵀ) D` and its inverse applied in O(n r) per column.

    P = QᵀQ has the eigenvalues of `A = QQᵀ = D² + Y Uᵀ + U Yᵀ + U G Uᵀ` (Y = D²V,
    G = (DV)ᵀ(DV)): D² plus a symmetric term of rank ≤ 2r with at most r positive and r
    negative eigenvalues. `A⁻¹ = Q⁻ᵀQ⁻¹ = (I + V Wᵀ) D⁻² (I + W Vᵀ)` with
    `W = −U (I + VᵀU)⁻¹` (Woodbury) has the reciprocal eigenvalues and the same shape.
    """

    def __init__(self, u: Tensor, v: Tensor, d: Tensor) -> None:
        self.u, self.v, self.d = u, v, d
        self.w = -u @ torch.linalg.inv(torch.eye(u.shape[1], dtype=u.dtype) + v.T @ u)

    def gram(self, x: Tensor) -> Tensor:
        """A x = Q Qᵀ x."""
        qt_x = self.d[:, None] * (x + self.v @ (self.u.T @ x))
        return self.d[:, None] * qt_x + self.u @ (self.v.T @ (self.d[:, None] * qt_x))

    def inverse_gram(self, x: Tensor) -> Tensor:
        """A⁻¹ x = Q⁻ᵀ Q⁻¹ x."""
        inv_x = (x + self.w @ (self.v.T @ x)) / self.d[:, None] ** 2
        return inv_x + self.v @ (self.w.T @ inv_x)

    def gram_start(self) -> Tensor:
        """The column space of A − D²."""
        return torch.cat([self.u, self.v * self.d[:, None] ** 2], dim=1)

    def inverse_gram_start(self) -> Tensor:
        """The column space of A⁻¹ − D⁻²."""
        return torch.cat([self.v, self.w / self.d[:, None] ** 2], dim=1)

    def dense_gram(self) -> Tensor:
        q = self.d[:, None] * (torch.eye(self.d.numel(), dtype=self.d.dtype) + self.v @ self.u.T)
        return q.T @ q  # = (Qᵀ)ᵀ Qᵀ, with Qᵀ = D (I + V Uᵀ)


def _ritz_values(matmul: Callable[[Tensor], Tensor], start: Tensor) -> Tensor:
    """Rayleigh–Ritz values of a symmetric operator on a block Krylov space from `start`.

    By Cauchy interlacing the j-th smallest Ritz value is ≥ the operator's j-th smallest
    eigenvalue and the j-th largest is ≤ its j-th largest, whatever the space; from the
    column space of the low-rank term, the eigenvalues it pushes beyond the diagonal's
    range (the largest of the operator) converge in a few blocks. Each block is
    orthogonalised against the earlier ones twice (classical Gram–Schmidt), and columns
    already (almost) in the space are dropped, so the basis stays orthonormal.
    """
    n, width = start.shape
    blocks = max(1, min(_KRYLOV_BLOCKS, _KRYLOV_FLOATS // max(1, n * width)))
    basis, images = start.new_zeros(n, 0), start.new_zeros(n, 0)
    block = start
    for _ in range(blocks):
        norms = block.norm(dim=0)
        for _ in range(2):
            block = block - basis @ (basis.T @ block)
        q, r = torch.linalg.qr(block)
        q = q[:, r.diagonal().abs() > 1e-8 * norms.clamp(min=1e-300)]
        if q.shape[1] == 0:
            break
        block = matmul(q)
        basis, images = torch.cat([basis, q], dim=1), torch.cat([images, block], dim=1)
    projected = basis.T @ images
    return torch.linalg.eigvalsh((projected + projected.T) / 2)


def lra_summary(
    u: Tensor, v: Tensor, d: Tensor, max_values: int, exact_size: int = LRA_EXACT_SIZE
) -> SpectrumSummary:
    """Spectrum of P for `Q = (I + UVᵀ) diag(d)`, exact up to `exact_size` parameters.

    Exact too when UVᵀ = 0 (P = D²). Otherwise an estimate at O(n r²) cost: the sorted
    diagonal values d², clamped by the Ritz bounds of the extreme eigenvalues. Since A is
    D² plus a term with at most r positive and r negative eigenvalues, interlacing puts
    P's i-th eigenvalue within r ranks of the i-th d², and the Ritz clamps keep that
    (each estimate lies between the true eigenvalues r ranks below and above it), so
    `rank_error = r/(n − 1)`. Outliers of P beyond the range of d², which the low-rank
    part exists to fit, come out exact once the Ritz values converge.
    """
    u, v, d = (t.detach().to(device="cpu", dtype=torch.float64) for t in (u, v, d))
    n, rank = u.shape
    if rank == 0 or not bool(v.any()) or not bool(u.any()):
        return exact_summary(d.square(), max_values)
    q = _LraQ(u, v, d)
    if n <= exact_size:
        return exact_summary(torch.linalg.eigvalsh(q.dense_gram()), max_values)
    # The j-th largest Ritz value of A bounds the j-th largest eigenvalue from below; the
    # j-th largest of A⁻¹ bounds the j-th smallest eigenvalue from above.
    top = _ritz_values(q.gram, q.gram_start())
    bottom = 1 / _ritz_values(q.inverse_gram, q.inverse_gram_start()).flip(0)
    lower = torch.full((n,), -math.inf, dtype=torch.float64)
    upper = torch.full((n,), math.inf, dtype=torch.float64)
    lower[n - top.numel() :] = top
    upper[: bottom.numel()] = bottom
    estimate = d.square().sort().values.clamp(min=lower, max=upper)
    values = summarize_spectrum(estimate, max_values)
    return SpectrumSummary(values, exact=False, rank_error=min(rank / (n - 1), 1.0))
