"""The public PSGD optimizers: `Kron`, `LRA`, `XMat`, `Diag`, `Dense`.

Each class is bookkeeping around a functional core (`psgd.kron`, `psgd.lra`, …); the
shared step, fitting modes and options are in `psgd.base`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from psgd import diag, kron, lra, xmat
from psgd.base import PSGDOptimizer, Unit, _require, compute_dtype
from psgd.spectra import SpectrumSummary, exact_summary, lra_summary

_BALANCE_EVERY = 100
#: `psgd.LRA(uv_init=...)` and `psgd.LRA(uv_balance=...)` choices (see its docstring)
LRA_UV_INITS = ("zero_v", "random")
LRA_UV_BALANCES = ("rotate", "norms")
#: chance per fit that `uv_balance="norms"` equalises the norms (the 2022 reference's)
NORM_BALANCE_PROBABILITY = 0.01

COMMON_ARGS_DOC = """
    Common arguments (every PSGD optimizer; all but `fitting`, `hessian_vector_product`,
    `finite_difference_after` and `seed` can differ per param group):
        params: iterable of parameters or param-group dicts.
        lr (float | None): μ_θ. None picks 1e-3 for whitening, 1e-2 for Newton fitting.
            PSGD's step is normalised (P g has roughly unit scale), so μ_θ is
            dimensionless: values 1e-3…1 are typical.
        momentum (float): EMA factor β in [0, 1) of the gradient that P is applied to,
            bias-corrected: `m ← β_t m + (1−β_t) g`, `β_t = min(t/(t+1), β)`. Default 0.
        weight_decay (float): decoupled, `θ ← θ − μ_θ λ θ` before the step. Default 0.
        fitting (str): "whiten" fits P to `E[ggᵀ]^{-1/2}` from gradients; works with the
            usual `loss.backward(); opt.step()` or a closure that calls backward.
            "newton" fits P to `|H|⁻¹` from Hessian-vector products: `step(closure)` with
            a closure that returns the loss and does NOT call backward.
        preconditioner_lr (float): μ_Q in (0, 2], the normalised Lie-group step. Default 0.1.
        preconditioner_update_probability (float | callable | None): chance of fitting P
            on a step, or a function of the step count returning it. None =
            `psgd.ExponentialAnneal()`: 1.0 for 500 steps, then decaying to 0.1.
        preconditioner_init_scale (float | None): s in `Q₀ = s·I`. None = automatic from
            the first gradients (or Hv), postponed while they are all zero. Fix it (1.0
            is the seed paper's choice) when the automatic scale misleads, e.g. on the
            delayed-XOR RNN.
        update_clip_rms (float | None | "auto"): cap on the RMS of each parameter's
            preconditioned update. "auto" = 2.0 for whitening, off for Newton.
        update_clip_norm (float | None): cap on the global norm of the preconditioned
            update of the group (the reference's `grad_clip_max_norm`). Default off.
        damping (float): δ in the damped pair `h + (δ + ε|h|)⊙ξ`, bounding P ≼ I/δ when the
            curvature is (nearly) singular. 0 turns the noise off. Default 1e-9.
        preconditioner_dtype (str | torch.dtype | None): storage of Q: "fp32", "bf16",
            "fp64". None = the parameter dtype (fp32 for bf16/fp16 parameters). The
            arithmetic is done in at least fp32; keep preconditioner_lr >= 0.1 with bf16.
        hessian_vector_product (str): "exact" (double backward, default) or
            "finite_difference" (a second closure call at θ + εv; the closure must be
            stateless). Newton fitting only.
        finite_difference_after (int | None): with "exact", switch to finite differences
            once this many steps were taken (the reference's delayed-XOR script: 1,000).
            None (default): never.
        lipschitz_beta (float): EMA factor of the Lipschitz bound that normalises each
            fitting step (0.9; 0.999 for very sparse gradients).
        seed (int | None): seed of the optimizer's own random stream (probes, update
            draws), saved in `state_dict()`. None draws one from torch's global RNG, so
            `torch.manual_seed` on every DDP rank gives every rank the same stream.
"""


def _lifted(tensors: list[Tensor]) -> list[Tensor]:
    """Working copies in at least fp32 (the tensors themselves when already so)."""
    return [t.to(compute_dtype(t.dtype)) for t in tensors]


def _store(stored: list[Tensor], working: list[Tensor]) -> None:
    for s, w in zip(stored, working):
        if s is not w:
            s.copy_(w)


class _KronFamily(PSGDOptimizer):
    """Kronecker-factored core shared by `Kron` (per tensor) and `Dense` (whole vector)."""

    preconditioner_keys = ("Q", "P")
    host_state_keys = ("updates",)

    def validate_family_options(self, group: dict[str, Any]) -> None:
        geometry = group["geometry"]
        _require(geometry in kron.GEOMETRIES, "geometry", geometry, f"one of {kron.GEOMETRIES}")

    def needs_probe(self, group: dict) -> bool:
        return group["geometry"] == "EQ"

    def factor_kinds(self, unit: Unit, group: dict) -> list[str]:
        raise NotImplementedError

    def working_shape(self, unit: Unit) -> tuple[int, ...]:
        raise NotImplementedError

    @staticmethod
    def _factors(state: dict, prefix: str) -> list[Tensor]:
        return [state[f"{prefix}{i}"] for i in range(len(state["L"]))]

    def init_unit(
        self, state: dict, unit: Unit, group: dict, scale: float, dtype: torch.dtype
    ) -> None:
        shape = self.working_shape(unit)
        kinds = self.factor_kinds(unit, group)
        factors = kron.init_factors(shape, kinds, scale, dtype, unit.holder.device)
        for i, (q, p) in enumerate(zip(factors, kron.precondition_factors(factors))):
            state[f"Q{i}"], state[f"P{i}"] = q, p
        state["L"] = torch.zeros(len(factors), dtype=torch.float32, device=unit.holder.device)
        state["updates"] = torch.zeros((), dtype=torch.int64)

    def fit_unit(self, state: dict, unit: Unit, group: dict, v: Tensor | None, h: Tensor) -> None:
        shape = self.working_shape(unit)
        stored_q, stored_p = self._factors(state, "Q"), self._factors(state, "P")
        factors, precond = _lifted(stored_q), _lifted(stored_p)
        kron.fit(
            factors,
            precond,
            state["L"],
            None if v is None else v.reshape(shape),
            h.reshape(shape),
            group["preconditioner_lr"],
            group["geometry"],
            group["lipschitz_beta"],
        )
        state["updates"] += 1
        if int(state["updates"]) % _BALANCE_EVERY == 0:
            kron.balance(factors)
            precond = kron.precondition_factors(factors)
        _store(stored_q, factors)
        _store(stored_p, precond)

    def apply_unit(self, state: dict, unit: Unit, group: dict, g: Tensor) -> Tensor:
        precond = _lifted(self._factors(state, "P"))
        shape = g.shape
        return kron.apply_factors(precond, g.reshape(self.working_shape(unit))).reshape(shape)

    def unit_spectrum(
        self, state: dict, unit: Unit, group: dict, max_values: int
    ) -> SpectrumSummary:
        return kron.spectrum(self._factors(state, "P"), max_values)

    def unit_matrix(self, state: dict, unit: Unit, group: dict) -> Tensor:
        return kron.dense_matrix(_lifted(self._factors(state, "P")))


class Kron(_KronFamily):
    """PSGD with a Kronecker-factored preconditioner per parameter tensor.

    For a parameter of shape `(d₁, …, d_k)`, `Q = Q₁ ⊗ … ⊗ Q_k` and `P = QᵀQ`; each step
    `θ ← θ − μ_θ P m` with m the (EMA) gradient. Each factor is dense or diagonal
    (`max_size`, `max_skew`, `memory_save_mode`), so P costs `Σ d_i²` floats instead of
    `(Π d_i)²`. With probability p per step every factor takes one Lie-group step on the
    fitting criterion `E[hᵀPh + vᵀP⁻¹v]` (whitening: h = g; Newton: h = Hv).

    Family arguments:
        geometry (str): local coordinate of the fitting step: "Q0.5EQ1.5" (default;
            inverse-free, Q kept symmetric by Procrustes steps), "EQ" (classic,
            triangular factors, triangular solves), "QEQ", "QUAD" (see `psgd.kron`).
        max_size (float): dims larger than this get a diagonal factor. Default ∞.
        max_skew (float): dim i is diagonal when `d_i² > max_skew · numel`: 1.0
            (default) makes the larger side of a matrix and all 1-D tensors diagonal;
            0 makes every factor diagonal; ∞ every factor dense.
        memory_save_mode (str | None): None, "smart_one_diag", "one_diag", "all_diag"
            make more factors diagonal (see `psgd.kron.factor_kinds`).

    Example:
        >>> opt = psgd.Kron(model.parameters(), lr=1e-3)
        >>> loss_fn(model(x), y).backward()
        >>> opt.step(); opt.zero_grad()
    """

    whole_vector = False

    def __init__(
        self,
        params: Iterable[Any],
        lr: float | None = None,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        *,
        geometry: str = "Q0.5EQ1.5",
        max_size: float = math.inf,
        max_skew: float = 1.0,
        memory_save_mode: str | None = None,
        **options: Any,
    ) -> None:
        family = dict(
            geometry=geometry,
            max_size=max_size,
            max_skew=max_skew,
            memory_save_mode=memory_save_mode,
        )
        super().__init__(params, lr, momentum, weight_decay, family=family, **options)

    def validate_family_options(self, group: dict[str, Any]) -> None:
        super().validate_family_options(group)
        _require(group["max_size"] >= 1, "max_size", group["max_size"], "must be >= 1")
        _require(group["max_skew"] >= 0, "max_skew", group["max_skew"], "must be >= 0")
        mode = group["memory_save_mode"]
        modes = kron.MEMORY_SAVE_MODES
        _require(mode in modes, "memory_save_mode", mode, f"one of {modes}")

    def factor_kinds(self, unit: Unit, group: dict) -> list[str]:
        return kron.factor_kinds(
            unit.holder.shape, group["max_size"], group["max_skew"], group["memory_save_mode"]
        )

    def working_shape(self, unit: Unit) -> tuple[int, ...]:
        return kron.working_shape(unit.holder.shape)


class Dense(_KronFamily):
    """PSGD with one dense preconditioner over all parameters (small problems).

    `P = QᵀQ` with Q an `n × n` matrix over the concatenated parameters: the
    preconditioner can represent any SPD matrix, so Newton fitting converges to `|H|⁻¹`
    (indefinite H included: saddles get a positive step) and PSGD behaves like a damped
    Newton method that needs no line search. Memory `n²`, cost O(n²)–O(n³) per fit:
    meant for up to a few thousand parameters (2-D landscapes, small quadratics).

    Family arguments:
        geometry (str): "Q0.5EQ1.5" (default), "EQ" (upper-triangular Q, the original
            PSGD), "QEQ" or "QUAD" (see `psgd.kron`).

    Example:
        >>> opt = psgd.Dense([x], lr=1.0, fitting="newton", preconditioner_lr=0.5,
        ...                  preconditioner_update_probability=1.0)
        >>> for _ in range(500):
        ...     opt.step(lambda: rosenbrock(x))
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float | None = None,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        *,
        geometry: str = "Q0.5EQ1.5",
        **options: Any,
    ) -> None:
        family = dict(geometry=geometry)
        super().__init__(params, lr, momentum, weight_decay, family=family, **options)

    def factor_kinds(self, unit: Unit, group: dict) -> list[str]:
        return ["dense"]

    def working_shape(self, unit: Unit) -> tuple[int, ...]:
        return (unit.numel,)


class Diag(PSGDOptimizer):
    """PSGD with a diagonal preconditioner over all parameters.

    `Q = diag(q)`, `P = diag(q²)`; the fit `q ← q − (μ/L)((q⊙h)² − (v⊘q)²)⊙q` converges
    to `q⁴ = E[v²]/E[h²]`: the equilibration preconditioner (Newton, like ESGD /
    AdaHessian) or `1/sqrt(E[g²])` (whitening, Adam's second-moment rule). Memory n.

    Family arguments:
        elementwise_normalizer (bool): one Lipschitz bound per coordinate instead of one
            for the whole vector. Default True: with a global bound, coordinates whose
            gradient scale is far below the largest fit extremely slowly (reference §2.2).

    Example:
        >>> opt = psgd.Diag(model.parameters(), lr=1e-3)
        >>> loss_fn(model(x), y).backward(); opt.step(); opt.zero_grad()
    """

    preconditioner_keys = ("q",)

    def __init__(
        self,
        params: Iterable[Any],
        lr: float | None = None,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        *,
        elementwise_normalizer: bool = True,
        **options: Any,
    ) -> None:
        family = dict(elementwise_normalizer=elementwise_normalizer)
        super().__init__(params, lr, momentum, weight_decay, family=family, **options)

    def validate_family_options(self, group: dict[str, Any]) -> None:
        value = group["elementwise_normalizer"]
        _require(isinstance(value, bool), "elementwise_normalizer", value, "True or False")

    def init_unit(
        self, state: dict, unit: Unit, group: dict, scale: float, dtype: torch.dtype
    ) -> None:
        device = unit.holder.device
        state["q"] = torch.full((unit.numel,), scale, dtype=dtype, device=device)
        shape = (unit.numel,) if group["elementwise_normalizer"] else ()
        state["L"] = torch.zeros(shape, dtype=torch.float32, device=device)

    def fit_unit(self, state: dict, unit: Unit, group: dict, v: Tensor | None, h: Tensor) -> None:
        (q,) = _lifted([state["q"]])
        diag.fit(q, state["L"], v, h, group["preconditioner_lr"], group["lipschitz_beta"])
        _store([state["q"]], [q])

    def apply_unit(self, state: dict, unit: Unit, group: dict, g: Tensor) -> Tensor:
        return diag.apply(state["q"].to(g.dtype), g)

    def unit_spectrum(
        self, state: dict, unit: Unit, group: dict, max_values: int
    ) -> SpectrumSummary:
        return exact_summary(state["q"].double().square(), max_values)

    def unit_matrix(self, state: dict, unit: Unit, group: dict) -> Tensor:
        return torch.diag(state["q"].double().square())


class XMat(PSGDOptimizer):
    """PSGD with an X-shaped preconditioner over all parameters (seed paper, S4).

    `Q = diag(a) + adiag(b)`: coordinate i is coupled with its mirror n−1−i of the
    flattened parameter vector, so P captures one off-diagonal per coordinate at
    O(n) memory and cost, and fits X-shaped curvature exactly. Both fitting modes; the
    step is `Q ← Q − (μ/L) E Q` on the X-matrix group.

    Example:
        >>> opt = psgd.XMat(model.parameters(), lr=0.02, fitting="newton")
        >>> opt.step(lambda: loss_fn(model(x), y))
    """

    preconditioner_keys = ("a", "b")

    def init_unit(
        self, state: dict, unit: Unit, group: dict, scale: float, dtype: torch.dtype
    ) -> None:
        device = unit.holder.device
        state["a"] = torch.full((unit.numel,), scale, dtype=dtype, device=device)
        state["b"] = torch.zeros(unit.numel, dtype=dtype, device=device)
        state["L"] = torch.zeros((), dtype=torch.float32, device=device)

    def fit_unit(self, state: dict, unit: Unit, group: dict, v: Tensor | None, h: Tensor) -> None:
        stored = [state["a"], state["b"]]
        a, b = _lifted(stored)
        xmat.fit(a, b, state["L"], v, h, group["preconditioner_lr"], group["lipschitz_beta"])
        _store(stored, [a, b])

    def apply_unit(self, state: dict, unit: Unit, group: dict, g: Tensor) -> Tensor:
        return xmat.apply(state["a"].to(g.dtype), state["b"].to(g.dtype), g)

    def unit_spectrum(
        self, state: dict, unit: Unit, group: dict, max_values: int
    ) -> SpectrumSummary:
        return exact_summary(xmat.eigenvalues(state["a"].double(), state["b"].double()), max_values)

    def unit_matrix(self, state: dict, unit: Unit, group: dict) -> Tensor:
        q = xmat.dense_q(state["a"].double(), state["b"].double())
        return q.T @ q


class LRA(PSGDOptimizer):
    """PSGD with a low-rank-plus-diagonal preconditioner over all parameters (seed paper).

    `Q = (I + UVᵀ) diag(d)` with `U, V ∈ R^{n×r}`: `(2r+1)n` floats and O(nr) per step,
    yet P can have eigenvalues far above and below its diagonal part, so it fits both
    tails of the curvature spectrum. Each fit moves d, then U or V (a coin flip), each
    on its own Lie group (`I + UVᵀ` with V fixed is a group, and vice versa). Rank 0 is
    `Diag` with the global normaliser and an explicit probe.

    Family arguments:
        rank (int): r, default 10.
        uv_init (str): how U and V start. "zero_v" (default): V = 0 and U random with
            Frobenius norm √0.1, so `Q₀ = s·I` exactly (U first moves once V has).
            "random": U and V both with i.i.d. N(0, 1/(n·r)) entries (Frobenius norms ≈ 1),
            as the 2022 reference (the seed paper's code) starts, so `Q₀ = s(I + UVᵀ)`.
        uv_balance (str): "rotate" (default): before every fit, equalise the norms of U
            and V and rotate UᵀU towards VᵀV (UVᵀ unchanged to O(E⁴)). "norms": equalise
            only the norms, with probability 0.01 per fit (the 2022 reference).
        step_normalizer (str): what a fit's step μ_Q is divided by. "lipschitz"
            (default): the smoothed running bound of every PSGD family (`lipschitz_beta`).
            "gradient_norm": this fit's own gradient size, max|∇d| for d and the Frobenius
            norm of ∇U Vᵀ (of U ∇Vᵀ) for U (V), never a past one (the 2022 reference).
        The three non-defaults and `finite_difference_after` (the reference's delayed-XOR
        script switches to finite-difference Hv after 1,000 steps) are the differences
        from the seed paper's code that issue 16's XOR suite ablates.

    Example (the seed paper's delayed-XOR setting):
        >>> opt = psgd.LRA(rnn.parameters(), lr=0.01, fitting="newton", preconditioner_lr=0.01,
        ...                preconditioner_init_scale=1.0, update_clip_norm=1.0,
        ...                preconditioner_update_probability=1.0)
        >>> opt.step(lambda: xor_loss(rnn, batch))
    """

    preconditioner_keys = ("U", "V", "d")

    def __init__(
        self,
        params: Iterable[Any],
        lr: float | None = None,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        *,
        rank: int = 10,
        uv_init: str = "zero_v",
        uv_balance: str = "rotate",
        step_normalizer: str = "lipschitz",
        **options: Any,
    ) -> None:
        family = dict(
            rank=rank, uv_init=uv_init, uv_balance=uv_balance, step_normalizer=step_normalizer
        )
        super().__init__(params, lr, momentum, weight_decay, family=family, **options)

    def validate_family_options(self, group: dict[str, Any]) -> None:
        rank = group["rank"]
        _require(isinstance(rank, int) and rank >= 0, "rank", rank, "an int >= 0")
        for name, choices in (
            ("uv_init", LRA_UV_INITS),
            ("uv_balance", LRA_UV_BALANCES),
            ("step_normalizer", lra.NORMALIZERS),
        ):
            _require(group[name] in choices, name, group[name], f"one of {choices}")

    def init_unit(
        self, state: dict, unit: Unit, group: dict, scale: float, dtype: torch.dtype
    ) -> None:
        device, n = unit.holder.device, unit.numel
        rank = min(group["rank"], n)
        gen = self._generator(device)
        u = torch.randn(n, rank, generator=gen, device=device, dtype=dtype)
        if group["uv_init"] == "random":
            # The 2022 reference: every entry of U and V N(0, 1/(n·r)).
            std = (n * max(rank, 1)) ** -0.5
            state["U"] = u * std
            state["V"] = torch.randn(n, rank, generator=gen, device=device, dtype=dtype) * std
        else:
            # V = 0 makes Q₀ = s·I exactly; a random U (norm sqrt(0.1)) lets the first V
            # steps move (the U step is zero while V is).
            state["U"] = u * (0.1**0.5 / u.norm().clamp(min=1e-30)) if rank else u
            state["V"] = torch.zeros(n, rank, device=device, dtype=dtype)
        state["d"] = torch.full((n,), scale, dtype=dtype, device=device)
        state["L"] = torch.zeros(3, dtype=torch.float32, device=device)

    def fit_unit(self, state: dict, unit: Unit, group: dict, v: Tensor | None, h: Tensor) -> None:
        stored = [state["U"], state["V"], state["d"]]
        u, w, d = _lifted(stored)
        update_u = self._coin() if u.shape[1] else True
        balancing = "rotate"
        if group["uv_balance"] == "norms":
            balancing = "norms" if self._uniform() < NORM_BALANCE_PROBABILITY else "none"
        lr, beta = group["preconditioner_lr"], group["lipschitz_beta"]
        lra.fit(u, w, d, state["L"], v, h, lr, update_u, beta, balancing, group["step_normalizer"])
        _store(stored, [u, w, d])

    def apply_unit(self, state: dict, unit: Unit, group: dict, g: Tensor) -> Tensor:
        u, w, d = (state[k].to(g.dtype) for k in ("U", "V", "d"))
        return lra.apply(u, w, d, g)

    def unit_spectrum(
        self, state: dict, unit: Unit, group: dict, max_values: int
    ) -> SpectrumSummary:
        return lra_summary(state["U"], state["V"], state["d"], max_values)

    def unit_matrix(self, state: dict, unit: Unit, group: dict) -> Tensor:
        q = lra.dense_q(*(state[k].double() for k in ("U", "V", "d")))
        return q.T @ q


for _cls in (Kron, Dense, Diag, XMat, LRA):
    _cls.__doc__ = (_cls.__doc__ or "") + COMMON_ARGS_DOC
