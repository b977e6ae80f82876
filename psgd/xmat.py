"""X-shaped ("XMat") preconditioner: the functional core.

`Q = diag(a) + adiag(b)`, so `Q x = a⊙x + b⊙flip(x)`: each coordinate i is coupled with
its mirror `n−1−i`. These matrices form a Lie group (the seed paper's Thm 3.1 with the
permutation group {identity, flip}), so Q stays invertible and `P = QᵀQ` SPD. Q splits
into independent 2×2 blocks on the mirror pairs, which makes its inverse, P and P's
spectrum all O(n). For odd n the middle entry of b stays 0 (it coincides with a's).
"""

from __future__ import annotations

import torch
from torch import Tensor

from psgd.linalg import lipschitz_step


def _flip(x: Tensor) -> Tensor:
    return torch.flip(x, dims=(0,))


def solve_transposed(a: Tensor, b: Tensor, v: Tensor) -> Tensor:
    """`Q⁻ᵀ v = (flip(a)⊙v − flip(b)⊙flip(v)) ⊘ (a⊙flip(a) − b⊙flip(b))`."""
    c = a * _flip(a) - b * _flip(b)
    return (_flip(a) * v - _flip(b) * _flip(v)) / c


def apply(a: Tensor, b: Tensor, g: Tensor) -> Tensor:
    """`P g = (a² + flip(b²))⊙g + (a⊙b + flip(a⊙b))⊙flip(g)`."""
    ab = a * b
    return (a.square() + _flip(b.square())) * g + (ab + _flip(ab)) * _flip(g)


def fit(
    a: Tensor,
    b: Tensor,
    lipschitz: Tensor,
    v: Tensor,
    h: Tensor,
    lr: float,
    lipschitz_beta: float = 0.9,
) -> None:
    """One step `Q ← Q − (μ/L) E Q` with `E = X(ã² − b̃², ã⊙flip(ã) − b̃⊙flip(b̃))`."""
    qh = a * h + b * _flip(h)
    qv = solve_transposed(a, b, v)
    grad_a = qh.square() - qv.square()
    grad_b = qh * _flip(qh) - qv * _flip(qv)
    n = a.numel()
    if n % 2 == 1:
        grad_b[n // 2] = 0
    ell = (qh.square() + qv.square()).max().float()
    step = lipschitz_step(lipschitz, ell, lr, lipschitz_beta, a.dtype)
    new_a = a - step * (grad_a * a + grad_b * _flip(b))
    new_b = b - step * (grad_a * b + grad_b * _flip(a))
    a.copy_(new_a)
    b.copy_(new_b)


def dense_q(a: Tensor, b: Tensor) -> Tensor:
    """Q as a dense matrix (for inspection and tests)."""
    n = a.numel()
    q = torch.diag(a)
    rows = torch.arange(n, device=a.device)
    q[rows, n - 1 - rows] += b
    return q


def eigenvalues(a: Tensor, b: Tensor) -> Tensor:
    """P's eigenvalues from its 2×2 mirror-pair blocks, O(n)."""
    n = a.numel()
    half = n // 2
    ai, bi = a[:half], b[:half]
    aj, bj = _flip(a)[:half], _flip(b)[:half]
    # Block of P on the pair (i, j): [[aᵢ² + bⱼ², aᵢbᵢ + aⱼbⱼ], [·, bᵢ² + aⱼ²]].
    mean = (ai.square() + bj.square() + bi.square() + aj.square()) / 2
    det = (ai * aj - bi * bj).square()
    root = (mean.square() - det).clamp(min=0).sqrt()
    values = [mean + root, (det / (mean + root)).clamp(min=0)]
    if n % 2 == 1:
        values.append((a[half] + b[half]).square().reshape(1))
    return torch.cat(values)
