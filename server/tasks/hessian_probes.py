"""How sharp a solution is, from Hessian-vector products alone: the top eigenvalue (power
iteration) and the trace (Hutchinson) of a loss's Hessian.

The seed paper claims PSGD reaches flatter minima. A network's Hessian is far too large to
form, but both numbers need only products Hv, which double backward gives at about the
cost of two more backward passes each (Pearlmutter's trick):

* power iteration: v ← Hv / ‖Hv‖ from a random v; after k products the Rayleigh quotient
  vᵀHv approaches the eigenvalue of largest magnitude (at a minimum, the top one);
* Hutchinson: E[vᵀHv] = tr H for probes v with independent ±1 entries; the mean over k
  probes, with its standard error (the estimate is noisy: report both).

Both draw their vectors from a caller's generator, so the same seed gives the same
numbers on a CPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

#: a Hessian-vector product: vectors shaped like the parameters in, H·v out
HessianProduct = Callable[[Sequence[Tensor]], list[Tensor]]


@dataclass(frozen=True)
class Sharpness:
    """The estimates and what they cost (Hessian-vector products)."""

    top_eigenvalue: float
    trace: float
    trace_stderr: float
    products: int


def hessian_product(loss: Tensor, params: Sequence[Tensor]) -> HessianProduct:
    """H·v of `loss` with respect to `params` by double backward; the gradient's graph
    is built once and kept, so each product costs one backward pass through it."""
    grads = torch.autograd.grad(loss, params, create_graph=True)

    def product(vectors: Sequence[Tensor]) -> list[Tensor]:
        images = torch.autograd.grad(
            grads, params, grad_outputs=vectors, retain_graph=True, allow_unused=True
        )
        # a parameter its gradient does not depend on (a linear one) has no curvature
        return [torch.zeros_like(p) if h is None else h for p, h in zip(params, images)]

    return product


def _dot(a: Sequence[Tensor], b: Sequence[Tensor]) -> float:
    return float(sum((x.double() * y.double()).sum() for x, y in zip(a, b)))


def _random_like(params: Sequence[Tensor], generator: torch.Generator, signs: bool) -> list[Tensor]:
    """Gaussian (power iteration) or ±1 (Hutchinson) vectors shaped like `params`, drawn
    on the CPU from `generator` (device-independent for a seed), then moved."""
    vectors = []
    for p in params:
        draw = torch.randn(p.shape, generator=generator, dtype=torch.float64)
        if signs:
            draw = draw.sign()
        vectors.append(draw.to(device=p.device, dtype=p.dtype))
    return vectors


def top_eigenvalue(
    product: HessianProduct, params: Sequence[Tensor], iterations: int, generator: torch.Generator
) -> float:
    """The Rayleigh quotient after `iterations` steps of power iteration (the eigenvalue
    of largest magnitude, which it approaches from below in magnitude)."""
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, got {iterations}")
    vector = _random_like(params, generator, signs=False)
    estimate = 0.0
    for _ in range(iterations):
        norm = math.sqrt(_dot(vector, vector))
        if norm == 0:
            return 0.0  # H·v vanished: v lies in the null space, all curvature seen is 0
        vector = [v / norm for v in vector]
        image = product(vector)
        estimate = _dot(vector, image)
        vector = image
    return estimate


def hutchinson_trace(
    product: HessianProduct, params: Sequence[Tensor], probes: int, generator: torch.Generator
) -> tuple[float, float]:
    """The trace estimate (mean of vᵀHv over ±1 probes) and its standard error (0 from
    one probe: no spread to measure)."""
    if probes < 1:
        raise ValueError(f"probes must be at least 1, got {probes}")
    samples = []
    for _ in range(probes):
        vector = _random_like(params, generator, signs=True)
        samples.append(_dot(vector, product(vector)))
    mean = math.fsum(samples) / probes
    if probes == 1:
        return mean, 0.0
    variance = math.fsum((s - mean) ** 2 for s in samples) / (probes - 1)
    return mean, math.sqrt(variance / probes)


def sharpness(loss: Tensor, params: Sequence[Tensor], probes: int, seed: int) -> Sharpness:
    """Both estimates of `loss`'s Hessian, `probes` products each, vectors from `seed`."""
    product = hessian_product(loss, params)
    generator = torch.Generator().manual_seed(seed)
    top = top_eigenvalue(product, params, probes, generator)
    trace, stderr = hutchinson_trace(product, params, probes, generator)
    return Sharpness(top, trace, stderr, products=2 * probes)
