"""Toy loss landscapes: classic 2-D test functions and quadratics with a chosen spectrum.

Every landscape has a single parameter, the point `x` (a leaf tensor of shape `(dim,)`), and
a pure objective `value(x)` that also accepts batched points of shape `(..., dim)`, so the UI
can draw contour maps (`contour`) from the same formula the optimizer sees. Hessians are exact:
by autograd on small problems, analytic for the quadratic.

The 2-D functions ignore the seed (they are deterministic); the quadratic draws its rotation and
its gradient noise from it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

import torch
from pydantic import Field, field_validator, model_validator
from torch import Tensor

from server.tasks.base import DTYPES, MemoryPart, Task, TaskConfig, TaskMemory

#: `hessian()` returns None above this many parameters (a dense Hessian gets expensive).
MAX_HESSIAN_DIM = 64
#: the largest `dim` (and `start` length) of the n-dimensional landscapes.
MAX_DIM = 4096
#: `solved` tolerance: within this much of the minimum value (relative when |min| > 1).
SOLVED_TOL = 1e-6

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Point2 = Annotated[list[FiniteFloat], Field(min_length=2, max_length=2)]
Domain = list[list[float]]


def _start_field(default: str) -> Any:
    return Field(None, description=f"starting point [x, y]; default {default}")


def _or(start: list[float] | None, default: list[float]) -> list[float]:
    return default if start is None else start


def _cover(domain: Domain, start: Sequence[float]) -> Domain:
    """Widen a 2-D plotting domain, if needed, so that the starting point lies inside it."""
    out = []
    for (lo, hi), s in zip(domain, start):
        margin = 0.1 * (hi - lo)
        out.append([min(lo, s - margin) if s < lo else lo, max(hi, s + margin) if s > hi else hi])
    return out


class LandscapeTask(Task):
    """A point `x` descending the objective `fn`; the shared machinery of every landscape."""

    def __init__(
        self,
        fn: Callable[[Tensor], Tensor],
        start: Sequence[float],
        *,
        dtype: torch.dtype,
        device: torch.device,
        domain: Domain | None,
        known_minima: list[list[float]],
        minimum_value: float | None,
        notes: str,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self._fn = fn
        self.dim = len(start)
        self.dtype = dtype
        self.device = device
        self._start = [float(s) for s in start]
        self.x = torch.tensor(self._start, dtype=dtype, device=device).requires_grad_(True)
        if domain is not None and self.dim == 2:
            domain = _cover(domain, self._start)
        self._facts: dict[str, Any] = {
            "num_params": self.dim,
            "dim": self.dim,
            "domain": domain if self.dim == 2 else None,
            "start": self._start,
            "known_minima": known_minima,
            "minimum_value": minimum_value,
            "notes": notes,
            **(extra or {}),
        }

    @property
    def params(self) -> list[Tensor]:
        return [self.x]

    def value(self, x: Tensor) -> Tensor:
        """The objective at a point, or at each point of a batch of shape (..., dim)."""
        return self._fn(x)

    def loss(self) -> Tensor:
        return self.value(self.x)

    def position(self) -> list[float] | None:
        if self.dim != 2:
            return None
        return [float(v) for v in self.x.detach().cpu().tolist()]

    def hessian(self) -> Tensor | None:
        if self.dim > MAX_HESSIAN_DIM:
            return None
        at = self.x.detach().clone()
        return torch.autograd.functional.hessian(self.value, at)

    def contour(self, grid_x: Tensor, grid_y: Tensor) -> Tensor | None:
        """The objective over a grid (`grid_x`, `grid_y` of one shape), for 2-D tasks only."""
        if self.dim != 2:
            return None
        kw = {"dtype": self.dtype, "device": self.device}
        points = torch.stack([torch.as_tensor(grid_x, **kw), torch.as_tensor(grid_y, **kw)], -1)
        with torch.no_grad():
            return self.value(points)

    def solved(self, loss: float) -> bool:
        target = self._facts["minimum_value"]
        if target is None or not math.isfinite(loss):
            return False
        return loss <= target + SOLVED_TOL * max(1.0, abs(target))

    def describe(self) -> dict[str, Any]:
        return copy.deepcopy(self._facts)


# ---------------------------------------------------------------------------------------------
# Objectives. Each takes points of shape (..., dim) and returns values of shape (...).


def rosenbrock(x: Tensor) -> Tensor:
    """Σ_i 100 (x_{2i+1} − x_{2i}²)² + (1 − x_{2i})² (uncoupled pairs); 0 at all ones."""
    a, b = x[..., 0::2], x[..., 1::2]
    return (100.0 * (b - a * a) ** 2 + (1.0 - a) ** 2).sum(-1)


def rastrigin(x: Tensor) -> Tensor:
    """10 n + Σ (x² − 10 cos 2πx); 0 at the origin, a local minimum near every integer point."""
    return 10.0 * x.shape[-1] + (x * x - 10.0 * torch.cos(2.0 * math.pi * x)).sum(-1)


def beale(x: Tensor) -> Tensor:
    """(1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)²; 0 at (3, 0.5)."""
    u, v = x[..., 0], x[..., 1]
    return (1.5 - u + u * v) ** 2 + (2.25 - u + u * v**2) ** 2 + (2.625 - u + u * v**3) ** 2


def himmelblau(x: Tensor) -> Tensor:
    """(x² + y − 11)² + (x + y² − 7)²; four minima with value 0."""
    u, v = x[..., 0], x[..., 1]
    return (u * u + v - 11.0) ** 2 + (u + v * v - 7.0) ** 2


def styblinski_tang(x: Tensor) -> Tensor:
    """½ Σ (x⁴ − 16x² + 5x); global minimum ≈ −39.166 n at x_i ≈ −2.903534."""
    return 0.5 * (x**4 - 16.0 * x**2 + 5.0 * x).sum(-1)


def saddle(x: Tensor) -> Tensor:
    """x² + ¼(y² − 2)² = x² − y² + ¼y⁴ + 1: a saddle at the origin (value 1) between two
    minima of value 0 at (0, ±√2)."""
    u, v = x[..., 0], x[..., 1]
    return u * u + 0.25 * (v * v - 2.0) ** 2


# ---------------------------------------------------------------------------------------------
# Configs


class LandscapeConfig(TaskConfig):
    """A landscape: one parameter, the point, of `dimension` coordinates."""

    @property
    def dimension(self) -> int:
        return getattr(self, "dim", 2)

    @property
    def param_shape(self) -> tuple[int, ...]:
        """The point's shape: a vector, unless a task lays it out as a matrix."""
        return (self.dimension,)

    def memory_estimate(self) -> TaskMemory:
        n = self.dimension
        # The exact Hessian (autograd) up to MAX_HESSIAN_DIM; a few vectors otherwise.
        hessian = 4 * MAX_HESSIAN_DIM**2 * 8 if n <= MAX_HESSIAN_DIM else 0
        return TaskMemory(
            param_shapes=(self.param_shape,),
            element_bytes=self.element_bytes,
            data=MemoryPart(self.constant_bytes(), ("dim",)),
            activations=MemoryPart(8 * n * self.element_bytes + hessian, ("dim",)),
            size=MemoryPart(0, ("dim",) if n > 2 else ()),
        )

    def constant_bytes(self) -> int:
        """What the task builds besides the point (the quadratic's rotation)."""
        return 0


class RosenbrockConfig(LandscapeConfig):
    """Rosenbrock's banana valley: Σ_i 100 (x_{2i+1} − x_{2i}²)² + (1 − x_{2i})² over uncoupled
    pairs of coordinates. A narrow curved valley with its minimum 0 at all ones; the 2-D case is
    the classic 100 (y − x²)² + (1 − x)²."""

    name: Literal["rosenbrock"] = Field("rosenbrock", description="task name")
    dim: int = Field(
        2,
        ge=2,
        le=MAX_DIM,
        description="number of coordinates; must be even (the function sums over pairs). "
        "Trajectories of dim > 2 are shown by PCA projection.",
    )
    start: list[FiniteFloat] | None = Field(
        None,
        max_length=MAX_DIM,
        description="starting point, one value per coordinate; default [-1.5, 2.0] for dim 2, "
        "all zeros otherwise",
    )

    @field_validator("dim")
    @classmethod
    def _even(cls, dim: int) -> int:
        if dim % 2:
            raise ValueError(f"rosenbrock dim must be even (pairs of coordinates), got {dim}")
        return dim

    @model_validator(mode="after")
    def _start_length(self) -> RosenbrockConfig:
        if self.start is not None and len(self.start) != self.dim:
            raise ValueError(f"start has {len(self.start)} values but dim is {self.dim}")
        return self

    def build(self, device: torch.device, seed: int) -> LandscapeTask:
        start = self.start
        if start is None:
            start = [-1.5, 2.0] if self.dim == 2 else [0.0] * self.dim
        return LandscapeTask(
            rosenbrock,
            start,
            dtype=DTYPES[self.dtype],
            device=torch.device(device),
            domain=[[-2.0, 2.0], [-1.0, 3.0]],
            known_minima=[[1.0] * self.dim],
            minimum_value=0.0,
            notes="unique minimum 0 at all ones, at the end of a narrow curved valley",
        )


class RastriginConfig(LandscapeConfig):
    """Rastrigin: 20 + Σ (x² − 10 cos 2πx) in 2-D. A bowl covered in a regular grid of local
    minima; the global minimum is 0 at the origin."""

    name: Literal["rastrigin"] = Field("rastrigin", description="task name")
    start: Point2 | None = _start_field("[3.1, -2.3]")

    def build(self, device: torch.device, seed: int) -> LandscapeTask:
        return LandscapeTask(
            rastrigin,
            _or(self.start, [3.1, -2.3]),
            dtype=DTYPES[self.dtype],
            device=torch.device(device),
            domain=[[-5.12, 5.12], [-5.12, 5.12]],
            known_minima=[[0.0, 0.0]],
            minimum_value=0.0,
            notes="global minimum 0 at the origin; local minima near every integer point",
        )


class BealeConfig(LandscapeConfig):
    """Beale: (1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)². Steep walls from the
    y³ term, flat plateaus (f is constant along y = 1) and a minimum 0 at (3, 0.5). The default
    start (1, 1.5) sits on a steep wall where the Hessian is indefinite (eigenvalues ≈ −51.5 and
    281.5), so step-size-limited first-order methods crawl."""

    name: Literal["beale"] = Field("beale", description="task name")
    start: Point2 | None = _start_field("[1.0, 1.5]")

    def build(self, device: torch.device, seed: int) -> LandscapeTask:
        return LandscapeTask(
            beale,
            _or(self.start, [1.0, 1.5]),
            dtype=DTYPES[self.dtype],
            device=torch.device(device),
            domain=[[-4.5, 4.5], [-4.5, 4.5]],
            known_minima=[[3.0, 0.5]],
            minimum_value=0.0,
            notes="minimum 0 at (3, 0.5); plateau along y = 1 towards x → −∞",
        )


HIMMELBLAU_MINIMA = [
    [3.0, 2.0],
    [-2.805118, 3.131312],
    [-3.779310, -3.283186],
    [3.584428, -1.848126],
]


class HimmelblauConfig(LandscapeConfig):
    """Himmelblau: (x² + y − 11)² + (x + y² − 7)². Four minima of value 0; which one a run
    reaches depends on the optimizer and the start."""

    name: Literal["himmelblau"] = Field("himmelblau", description="task name")
    start: Point2 | None = _start_field("[0.0, 0.0]")

    def build(self, device: torch.device, seed: int) -> LandscapeTask:
        return LandscapeTask(
            himmelblau,
            _or(self.start, [0.0, 0.0]),
            dtype=DTYPES[self.dtype],
            device=torch.device(device),
            domain=[[-5.0, 5.0], [-5.0, 5.0]],
            known_minima=[list(m) for m in HIMMELBLAU_MINIMA],
            minimum_value=0.0,
            notes="four minima of value 0",
        )


ST_GLOBAL = -2.903534027771177  # root of 4x³ − 32x + 5 with the lowest value
ST_LOCAL = 2.746802770990837  # the other minimum of the 1-D term
ST_MIN_1D = -39.16616570377141


class StyblinskiTangConfig(LandscapeConfig):
    """Styblinski–Tang: ½ Σ (x⁴ − 16x² + 5x) in 2-D. Global minimum ≈ −78.33233 at
    (−2.903534, −2.903534), three worse local minima. The default start (0.5, 0.5) lies just past
    the ridge at x ≈ 0.157, so plain descent falls into the worst local minimum (2.7468, 2.7468),
    f ≈ −50.06; momentum or large steps can carry a run over into the global basin."""

    name: Literal["styblinski_tang"] = Field("styblinski_tang", description="task name")
    start: Point2 | None = _start_field("[0.5, 0.5]")

    def build(self, device: torch.device, seed: int) -> LandscapeTask:
        g, l = ST_GLOBAL, ST_LOCAL
        return LandscapeTask(
            styblinski_tang,
            _or(self.start, [0.5, 0.5]),
            dtype=DTYPES[self.dtype],
            device=torch.device(device),
            domain=[[-5.0, 5.0], [-5.0, 5.0]],
            known_minima=[[g, g]],
            minimum_value=2 * ST_MIN_1D,
            notes="global minimum ≈ −78.33233; three local minima listed under local_minima",
            extra={"local_minima": [[g, l], [l, g], [l, l]]},
        )


SADDLE_MINIMA = [[0.0, math.sqrt(2.0)], [0.0, -math.sqrt(2.0)]]


class SaddleConfig(LandscapeConfig):
    """A saddle between two minima: x² + ¼(y² − 2)² = x² − y² + ¼y⁴ + 1. At the origin the
    surface curves up along x and down along y (Hessian diag(2, −2), value 1); the quartic term
    bounds it below, with minima 0 at (0, ±√2). The default start (1, 0.001) lies almost on the
    ridge that leads into the saddle: a run that escapes along y reaches a minimum (solved), one
    that does not stalls at the saddle with loss 1."""

    name: Literal["saddle"] = Field("saddle", description="task name")
    start: Point2 | None = _start_field("[1.0, 0.001]")

    def build(self, device: torch.device, seed: int) -> LandscapeTask:
        return LandscapeTask(
            saddle,
            _or(self.start, [1.0, 1e-3]),
            dtype=DTYPES[self.dtype],
            device=torch.device(device),
            domain=[[-2.0, 2.0], [-2.0, 2.0]],
            known_minima=[list(m) for m in SADDLE_MINIMA],
            minimum_value=0.0,
            notes="saddle point at the origin (value 1); minima 0 at (0, ±√2)",
        )


class QuadraticConfig(LandscapeConfig):
    """A quadratic ½ θᵀHθ with H = O diag(λ) Oᵀ: eigenvalue magnitudes log-spaced in
    [1, condition_number], the smallest `negative_eigenvalues` of them negated (indefinite),
    O a random rotation drawn from the seed. Optional Gaussian gradient noise mimics
    mini-batches without changing the Hessian. `kronecker` and `x_shaped` give H the
    structure of PSGD's Kron and XMat preconditioners (the fitting suite's matched cases)."""

    name: Literal["quadratic"] = Field("quadratic", description="task name")
    dim: int = Field(
        10,
        ge=2,
        le=MAX_DIM,
        description="number of parameters. Trajectories of dim > 2 are shown by PCA projection; "
        "the exact Hessian is available up to dim 64",
    )
    condition_number: float = Field(
        100.0,
        ge=1.0,
        le=1e12,
        allow_inf_nan=False,
        description="ratio of the largest to the smallest eigenvalue magnitude of H; the "
        "magnitudes are log-spaced between 1 and this value",
    )
    negative_eigenvalues: int = Field(
        0,
        ge=0,
        le=MAX_DIM,
        description="how many eigenvalues are negative (at most dim): the ones of smallest "
        "magnitude are negated, making H indefinite and the loss unbounded below",
    )
    noise: float = Field(
        0.0,
        ge=0.0,
        allow_inf_nan=False,
        description="standard deviation of Gaussian noise added to every gradient coordinate, "
        "drawn afresh for every batch (0: deterministic); the Hessian is unchanged",
    )
    rotate: bool = Field(
        True,
        description="rotate the eigenvectors by a random orthogonal matrix drawn from the seed; "
        "off: H is diagonal (axis-aligned)",
    )
    kronecker: list[Annotated[int, Field(ge=2)]] | None = Field(
        None,
        min_length=2,
        max_length=2,
        description="[m, n] with m·n = dim: H = H₁ ⊗ H₂ (m×m and n×n factors, each with "
        "eigenvalues log-spaced in [1, √condition_number], so H's span [1, condition_number]; "
        "each factor rotated when rotate is on) and the point an m×n matrix, flattened "
        "row-major, so psgd-kron fits one factor per side. Not with negative_eigenvalues",
    )
    x_shaped: bool = Field(
        False,
        description="rotate only within each pair of coordinates (i, dim−1−i) by a random "
        "angle, so H is zero off its diagonal and anti-diagonal (psgd-xmat's structure); "
        "needs rotate, not with kronecker",
    )
    start: list[FiniteFloat] | None = Field(
        None,
        max_length=MAX_DIM,
        description="starting point, one value per coordinate; default all ones",
    )

    @model_validator(mode="after")
    def _consistent(self) -> QuadraticConfig:
        if self.negative_eigenvalues > self.dim:
            raise ValueError(
                f"negative_eigenvalues ({self.negative_eigenvalues}) exceeds dim ({self.dim})"
            )
        if self.start is not None and len(self.start) != self.dim:
            raise ValueError(f"start has {len(self.start)} values but dim is {self.dim}")
        if self.kronecker is not None:
            m, n = self.kronecker
            if m * n != self.dim:
                raise ValueError(f"kronecker {m}×{n} has {m * n} entries but dim is {self.dim}")
            if self.negative_eigenvalues:
                raise ValueError("kronecker: give negative_eigenvalues 0 (H₁ ⊗ H₂ is definite)")
            if self.x_shaped:
                raise ValueError("x_shaped: not with kronecker (choose one structure)")
        if self.x_shaped and not self.rotate:
            raise ValueError("x_shaped: needs rotate (unrotated, H is diagonal)")
        return self

    @property
    def param_shape(self) -> tuple[int, ...]:
        return (self.dim,) if self.kronecker is None else tuple(self.kronecker)

    def constant_bytes(self) -> int:
        if not self.rotate:
            return 4 * self.dim * 8
        # Building the rotation: the float64 Gaussian, its QR factors and workspace, the
        # sign-fixed copy; then the rotation kept in the parameter dtype.
        return self.dim**2 * (5 * 8 + self.element_bytes)

    def eigenvalues(self) -> Tensor:
        """The spectrum of H (float64, CPU), in order of increasing magnitude."""
        return torch.sort(self.coordinate_eigenvalues()).values

    def coordinate_eigenvalues(self) -> Tensor:
        """H's eigenvalues in the order of the rotation's columns (float64, CPU): by
        increasing magnitude, or λ₁ ⊗ λ₂ (row-major) with `kronecker`."""
        if self.kronecker is not None:
            m, n = self.kronecker
            half = 0.5 * math.log10(self.condition_number)
            first, second = (torch.logspace(0.0, half, k, dtype=torch.float64) for k in (m, n))
            return torch.kron(first, second)
        mags = torch.logspace(0.0, math.log10(self.condition_number), self.dim, dtype=torch.float64)
        signs = torch.ones(self.dim, dtype=torch.float64)
        signs[: self.negative_eigenvalues] = -1.0
        return signs * mags

    def build(self, device: torch.device, seed: int) -> QuadraticTask:
        return QuadraticTask(self, torch.device(device), seed)


class QuadraticTask(LandscapeTask):
    """½ θᵀHθ (+ noise·ξᵀθ with ξ ~ N(0, I) redrawn by `next_batch` when noise > 0)."""

    def __init__(self, cfg: QuadraticConfig, device: torch.device, seed: int) -> None:
        dtype = DTYPES[cfg.dtype]
        lam = cfg.coordinate_eigenvalues()
        rotation = _rotation(cfg, device, seed) if cfg.rotate else None
        self._lam = lam.to(device=device, dtype=dtype)
        self._rot = None if rotation is None else rotation.to(dtype)
        self._exact_hessian = None
        if cfg.dim <= MAX_HESSIAN_DIM:
            lam64 = lam.to(device)
            h = torch.diag(lam64) if rotation is None else (rotation * lam64) @ rotation.T
            self._exact_hessian = (0.5 * (h + h.T)).to(dtype)

        definite = cfg.negative_eigenvalues == 0
        kappa = cfg.condition_number
        extra: dict[str, Any] = {
            "condition_number": kappa,
            "negative_eigenvalues": cfg.negative_eigenvalues,
            "eigenvalue_range": [float(lam.min()), float(lam.max())],
            "noise": cfg.noise,
        }
        if cfg.dim <= MAX_HESSIAN_DIM:
            extra["eigenvalues"] = cfg.eigenvalues().tolist()
        if cfg.kronecker is not None:
            extra["param_shape"] = list(cfg.kronecker)
        super().__init__(
            self._quadratic,
            _or(cfg.start, [1.0] * cfg.dim),
            dtype=dtype,
            device=device,
            domain=[[-1.5, 1.5], [-1.5, 1.5]],
            known_minima=[[0.0, 0.0]] if definite and cfg.dim == 2 else [],
            minimum_value=0.0 if definite else None,
            notes=(
                "unique minimum 0 at θ = 0"
                if definite
                else "indefinite: saddle point at θ = 0, unbounded below"
            ),
            extra=extra,
        )
        if cfg.kronecker is not None:  # the same point, laid out as the m×n matrix
            self.x = self.x.detach().reshape(cfg.param_shape).requires_grad_(True)

        self.noise = cfg.noise
        self._xi: Tensor | None = None
        if self.noise > 0:
            self._noise_gen = torch.Generator(device=device).manual_seed((seed + 1) % 2**63)
            self.next_batch()

    def _quadratic(self, x: Tensor) -> Tensor:
        y = x if self._rot is None else x @ self._rot  # coordinates in the eigenbasis: Oᵀθ
        return 0.5 * (self._lam * y * y).sum(-1)

    def next_batch(self) -> None:
        if self.noise > 0:
            self._xi = torch.randn(
                self.dim, generator=self._noise_gen, dtype=self.dtype, device=self.device
            )

    def _point(self) -> Tensor:
        """The point as the vector the objective takes (a matrix with `kronecker`)."""
        return self.x.reshape(self.dim)

    def loss(self) -> Tensor:
        f = self.value(self._point())
        if self._xi is None:
            return f
        return f + self.noise * torch.dot(self._xi, self._point())

    def hessian(self) -> Tensor | None:
        return None if self._exact_hessian is None else self._exact_hessian.clone()

    def solved(self, loss: float) -> bool:
        # A noisy batch loss can dip below 0 by chance: judge the noise-free value instead.
        if self.noise > 0:
            with torch.no_grad():
                loss = float(self.value(self._point()))
        return super().solved(loss)


def _haar(n: int, gen: torch.Generator, device: torch.device) -> Tensor:
    """A Haar-random rotation: QR of a Gaussian drawn on the CPU (the same for a seed
    everywhere), factored on the device (fast on GPUs), signs fixed so that Q is unique."""
    gauss = torch.randn(n, n, generator=gen, dtype=torch.float64)
    q, r = torch.linalg.qr(gauss.to(device))
    return q * torch.sign(torch.diagonal(r)).unsqueeze(0)


def _rotation(cfg: QuadraticConfig, device: torch.device, seed: int) -> Tensor:
    """The eigenvectors of H as columns (float64): Haar-random over all coordinates, a
    Kronecker product of two Haar rotations, or plane rotations of the mirror pairs."""
    gen = torch.Generator().manual_seed(seed)
    if cfg.kronecker is not None:
        m, n = cfg.kronecker
        return torch.kron(_haar(m, gen, device), _haar(n, gen, device))
    if not cfg.x_shaped:
        return _haar(cfg.dim, gen, device)
    angles = 2 * math.pi * torch.rand(cfg.dim // 2, generator=gen, dtype=torch.float64)
    rotation = torch.eye(cfg.dim, dtype=torch.float64)
    first = torch.arange(cfg.dim // 2)
    mirror = cfg.dim - 1 - first
    cos, sin = torch.cos(angles), torch.sin(angles)
    rotation[first, first], rotation[first, mirror] = cos, -sin
    rotation[mirror, first], rotation[mirror, mirror] = sin, cos
    return rotation.to(device)


LANDSCAPE_CONFIGS = (
    RosenbrockConfig,
    RastriginConfig,
    BealeConfig,
    HimmelblauConfig,
    StyblinskiTangConfig,
    SaddleConfig,
    QuadraticConfig,
)
