"""Spectra from the factors equal the dense P's eigenvalues, or stay within their bounds.

fp64 inputs, fixed seeds. "Within bounds" means what `SpectrumSummary` promises: the value
at quantile position t lies between the exact spectrum's quantiles at t ± rank_error.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import psgd
from psgd import kron, lra
from psgd.spectra import SpectrumSummary, kron_summary, lra_summary

DT = torch.float64


def _assert_within_bounds(summary: SpectrumSummary, exact: torch.Tensor) -> None:
    exact = exact.double().sort().values
    values = summary.values.double()
    positions = torch.linspace(0, 1, values.numel(), dtype=DT)
    error = summary.rank_error
    low = torch.quantile(exact, (positions - error).clamp(0, 1))
    high = torch.quantile(exact, (positions + error).clamp(0, 1))
    slack = 1e-6 * exact.abs().max()  # float32 values
    assert (values >= low - slack).all(), (values - low).min()
    assert (values <= high + slack).all(), (values - high).max()


def _lra_factors(n: int, r: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """U, V and a d spanning two decades: a P with outliers above and below d²'s range."""
    gen = torch.Generator().manual_seed(seed)
    u = torch.randn(n, r, generator=gen, dtype=DT) / n**0.5
    v = torch.randn(n, r, generator=gen, dtype=DT) * 3 / n**0.5
    d = torch.logspace(-1, 1, n, dtype=DT)[torch.randperm(n, generator=gen)]
    return u, v, d


def _lra_exact(u: torch.Tensor, v: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    q = lra.dense_q(u, v, d)
    return torch.linalg.eigvalsh(q.T @ q)


def test_lra_spectrum_is_exact_up_to_the_size_limit() -> None:
    u, v, d = _lra_factors(200, 6, seed=0)
    summary = lra_summary(u, v, d, max_values=256)
    assert summary.exact and summary.rank_error == 0
    torch.testing.assert_close(summary.values.double(), _lra_exact(u, v, d), rtol=1e-5, atol=0)


def test_lra_spectrum_without_low_rank_part_is_d_squared_exactly() -> None:
    u, _, d = _lra_factors(1000, 4, seed=1)
    summary = lra_summary(u, torch.zeros_like(u), d, max_values=2000)
    assert summary.exact
    torch.testing.assert_close(summary.values.double(), d.square().sort().values.float().double())


@pytest.mark.parametrize("max_values", [256, 2000])
def test_lra_estimate_stays_within_its_rank_bound_and_gets_the_outliers(max_values: int) -> None:
    n, r = 1000, 5
    u, v, d = _lra_factors(n, r, seed=2)
    exact = _lra_exact(u, v, d)
    d2 = d.square()
    assert exact.max() > 1.5 * d2.max() and exact.min() < d2.min() / 1.5, "no outliers to find"
    summary = lra_summary(u, v, d, max_values=max_values)
    assert not summary.exact
    assert summary.rank_error == pytest.approx(r / (n - 1))
    assert summary.values.numel() == min(max_values, n)
    _assert_within_bounds(summary, exact)
    # The extremes, which the diagonal alone misses, come out exact.
    assert summary.values[-1].item() == pytest.approx(exact.max().item(), rel=1e-5)
    assert summary.values[0].item() == pytest.approx(exact.min().item(), rel=1e-5)


def test_lra_estimate_never_forms_an_n_by_n_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    sizes: list[int] = []
    eigvalsh = torch.linalg.eigvalsh

    def recording(matrix: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        sizes.append(matrix.shape[-1])
        return eigvalsh(matrix, *args, **kwargs)

    monkeypatch.setattr(torch.linalg, "eigvalsh", recording)
    weight = nn.Parameter(torch.zeros(1000))
    opt = psgd.LRA([weight], lr=0.01, rank=4, preconditioner_update_probability=1.0, seed=0)
    gen = torch.Generator().manual_seed(3)
    for _ in range(3):
        weight.grad = torch.randn(1000, generator=gen) * torch.logspace(-1, 1, 1000)
        opt.step()
    info = opt.preconditioner_spectra_info()["all"]
    assert not info.exact and info.values.numel() == 256
    assert sizes and max(sizes) < 100, sizes  # Ritz problems, never 1000 × 1000


def test_kron_spectrum_is_exact_for_small_products() -> None:
    gen = torch.Generator().manual_seed(4)
    factors = [torch.randn(k, k, generator=gen, dtype=DT) for k in (3, 4)]
    precond = [*kron.precondition_factors(factors), torch.rand(5, generator=gen, dtype=DT) + 0.1]
    summary = kron.spectrum(precond, max_values=256)
    assert summary.exact
    dense = torch.linalg.eigvalsh(kron.dense_matrix(precond))
    torch.testing.assert_close(summary.values.double(), dense, rtol=1e-5, atol=0)


def test_kron_estimate_of_a_compressed_product_stays_within_its_bound() -> None:
    gen = torch.Generator().manual_seed(5)
    eigs = [torch.rand(k, generator=gen, dtype=DT).mul(4).exp() for k in (40, 30, 25)]
    products = eigs[0]
    for e in eigs[1:]:
        products = (products[:, None] * e[None, :]).flatten()
    summary = kron_summary(eigs, max_values=256, exact_products=500, points=32)
    assert not summary.exact and 0 < summary.rank_error < 0.1
    _assert_within_bounds(summary, products)
    exact = kron_summary(eigs, max_values=256)
    assert exact.exact
    torch.testing.assert_close(
        exact.values, torch.quantile(products, torch.linspace(0, 1, 256, dtype=DT)).float()
    )


def test_kron_spectrum_of_a_huge_product_is_summarised_without_enumerating_it() -> None:
    gen = torch.Generator().manual_seed(6)
    eigs = [torch.rand(3000, generator=gen, dtype=DT) + 0.5 for _ in range(3)]  # 2.7e10 values
    summary = kron_summary(eigs, max_values=64)
    assert not summary.exact and summary.rank_error < 0.01
    assert summary.values.numel() == 64
    expected_max = torch.stack([e.max() for e in eigs]).prod().item()
    assert summary.values[-1].item() <= expected_max * (1 + 1e-6)


def test_xmat_and_diagonal_spectra_are_exact() -> None:
    gen = torch.Generator().manual_seed(7)
    weight = nn.Parameter(torch.zeros(9, dtype=DT))
    for cls in (psgd.XMat, psgd.Diag):
        opt = cls([weight], lr=0.01, seed=0)
        weight.grad = torch.randn(9, generator=gen, dtype=DT)
        opt.step()
        info = opt.preconditioner_spectra_info()["all"]
        assert info.exact and info.rank_error == 0
        dense = torch.linalg.eigvalsh(opt.preconditioner_matrix())
        torch.testing.assert_close(info.values.double(), dense, rtol=1e-5, atol=0)
