"""The bookkeeping every PSGD optimizer shares; the families supply only the math.

A family sees "units": the tensor a preconditioner acts on. Per-tensor families (Kron)
have one unit per parameter; whole-vector families (LRA, XMat, Diag, Dense) have one unit
per param group, the concatenation of its parameters in order. The base class draws the
random numbers, computes gradients and Hessian-vector products, keeps momentum, weight
decay, clipping and the update schedule, and stores everything in `self.state` as tensors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import torch
from torch import Tensor

from psgd import hvp
from psgd.schedules import ExponentialAnneal
from psgd.spectra import SpectrumSummary

Probability = float | Callable[[int], float]

_LOW_PRECISION = (torch.bfloat16, torch.float16)
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp64": torch.float64}
MATRIX_LIMIT = 4096
#: the counts of `PSGDOptimizer.work`
WORK_KEYS = ("function_evaluations", "gradient_evaluations", "hessian_vector_products")
#: `lr=None` picks the fitting mode's default (the reference classes' own: §3.1)
DEFAULT_LR = {"whiten": 1e-3, "newton": 1e-2}
#: preconditioner_lr lies in (0, PRECONDITIONER_LR_MAX]: the reference's admissible range (§1.6)
PRECONDITIONER_LR_MAX = 2.0
#: parameters' elements whose preconditioned directions are applied together (64 MiB in
#: fp32): few kernel launches per step, and a bounded transient beyond the state
APPLY_CHUNK = 1 << 24


def _require(ok: bool, name: str, value: object, rule: str) -> None:
    if not ok:
        raise ValueError(f"Invalid {name}: {value!r} ({rule})")


def _positive_or_none(value: object) -> bool:
    return value is None or (isinstance(value, (int, float)) and value > 0)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Low-precision storage is lifted to fp32 for the arithmetic."""
    return torch.float32 if dtype in _LOW_PRECISION else dtype


class Unit:
    """The parameters one preconditioner covers; its state lives on the first of them."""

    def __init__(self, params: list[Tensor], whole_vector: bool) -> None:
        self.params = params
        self.whole_vector = whole_vector

    @property
    def holder(self) -> Tensor:
        return self.params[0]

    @property
    def numel(self) -> int:
        return sum(p.numel() for p in self.params)

    def gather(self, tensors: list[Tensor], dtype: torch.dtype) -> Tensor:
        """The unit's view of per-parameter tensors: flat concatenation or the tensor."""
        if self.whole_vector:
            return torch.cat([t.reshape(-1).to(dtype) for t in tensors])
        return tensors[0].to(dtype)

    def scatter(self, x: Tensor) -> list[Tensor]:
        if not self.whole_vector:
            return [x.reshape(self.params[0].shape)]
        sizes = [p.numel() for p in self.params]
        return [c.view(p.shape) for c, p in zip(torch.split(x, sizes), self.params)]


class PSGDOptimizer(torch.optim.Optimizer):
    """Base class; see the family classes (`psgd.Kron`, `psgd.LRA`, …) for the math.

    `work` counts, cumulatively, what `step()` evaluated itself, so that optimizers can be
    compared by work rather than by steps: ``function_evaluations`` (closure calls),
    ``gradient_evaluations`` and ``hessian_vector_products``. Newton fitting: one closure
    call and one gradient a step, plus one Hessian-vector product on a step that probes
    (exact), or a second closure call and gradient at θ + εv instead (finite differences).
    Whitening: a closure, when given, counts as one function and one gradient evaluation
    (it calls backward); gradients the caller computed before `step()` are not counted.
    The counts are saved in `state_dict()` and restored by `load_state_dict()`.
    """

    whole_vector: ClassVar[bool] = True
    fitting_modes: ClassVar[tuple[str, ...]] = ("whiten", "newton")

    def __init__(
        self,
        params: Iterable[Any],
        lr: float | None = None,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        *,
        family: dict[str, Any] | None = None,
        fitting: str = "whiten",
        preconditioner_lr: float = 0.1,
        preconditioner_update_probability: Probability | None = None,
        preconditioner_init_scale: float | None = None,
        update_clip_rms: float | str | None = "auto",
        update_clip_norm: float | None = None,
        damping: float = 1e-9,
        preconditioner_dtype: str | torch.dtype | None = None,
        hessian_vector_product: str = "exact",
        finite_difference_after: int | None = None,
        lipschitz_beta: float = 0.9,
        seed: int | None = None,
    ) -> None:
        _require(fitting in self.fitting_modes, "fitting", fitting, f"one of {self.fitting_modes}")
        _require(
            hessian_vector_product in ("exact", "finite_difference"),
            "hessian_vector_product",
            hessian_vector_product,
            "'exact' or 'finite_difference'",
        )
        switch = finite_difference_after
        _require(
            switch is None
            or (isinstance(switch, int) and not isinstance(switch, bool) and switch >= 0),
            "finite_difference_after",
            switch,
            "an int >= 0 or None",
        )
        _require(
            switch is None or hessian_vector_product == "exact",
            "finite_difference_after",
            switch,
            "switches exact products to finite differences: needs hessian_vector_product='exact'",
        )
        _require(seed is None or isinstance(seed, int), "seed", seed, "an int or None")
        self.fitting = fitting
        self.hessian_vector_product = hessian_vector_product
        self.finite_difference_after = finite_difference_after
        if seed is None:
            # Drawn from torch's global RNG, so torch.manual_seed makes it reproducible.
            seed = int(torch.randint(0, 2**62, (1,)).item())
        self.seed = seed
        self._global_step = 0
        self.work: dict[str, int] = dict.fromkeys(WORK_KEYS, 0)
        self._generators: dict[str, torch.Generator] = {}
        self._pending_rng: dict[str, Tensor] = {}
        defaults = dict(
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            preconditioner_lr=preconditioner_lr,
            preconditioner_update_probability=preconditioner_update_probability,
            preconditioner_init_scale=preconditioner_init_scale,
            update_clip_rms=update_clip_rms,
            update_clip_norm=update_clip_norm,
            damping=damping,
            preconditioner_dtype=preconditioner_dtype,
            lipschitz_beta=lipschitz_beta,
            **(family or {}),
        )
        super().__init__(params, defaults)

    # ----------------------------------------------------------------- validation
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        try:
            self._resolve_defaults(group)
            self._validate_group(group)
        except ValueError:
            self.param_groups.pop()
            raise

    def _resolve_defaults(self, group: dict[str, Any]) -> None:
        """Turn the "pick for me" values (None, "auto") into the fitting mode's defaults."""
        if group["lr"] is None:
            group["lr"] = DEFAULT_LR[self.fitting]
        if group["update_clip_rms"] == "auto":
            group["update_clip_rms"] = 2.0 if self.fitting == "whiten" else None
        if group["preconditioner_update_probability"] is None:
            group["preconditioner_update_probability"] = ExponentialAnneal()

    def _validate_group(self, group: dict[str, Any]) -> None:
        lr = group["lr"]
        _require(isinstance(lr, (float, int, Tensor)) and lr >= 0, "lr", lr, "must be >= 0")
        _require(0 <= group["momentum"] < 1, "momentum", group["momentum"], "must be in [0, 1)")
        wd = group["weight_decay"]
        _require(wd >= 0, "weight_decay", wd, "must be >= 0")
        plr = group["preconditioner_lr"]
        bound = f"must be in (0, {PRECONDITIONER_LR_MAX:g}]"
        _require(0 < plr <= PRECONDITIONER_LR_MAX, "preconditioner_lr", plr, bound)
        prob = group["preconditioner_update_probability"]
        _require(
            callable(prob) or (isinstance(prob, (int, float)) and 0 <= prob <= 1),
            "preconditioner_update_probability",
            prob,
            "a number in [0, 1] or a callable of the step",
        )
        scale = group["preconditioner_init_scale"]
        _require(
            _positive_or_none(scale) and (scale is None or math.isfinite(scale)),
            "preconditioner_init_scale",
            scale,
            "a finite number > 0, or None for automatic",
        )
        for name in ("update_clip_rms", "update_clip_norm"):
            _require(_positive_or_none(group[name]), name, group[name], "a number > 0 or None")
        _require(group["damping"] >= 0, "damping", group["damping"], "must be >= 0")
        beta = group["lipschitz_beta"]
        _require(0 <= beta < 1, "lipschitz_beta", beta, "must be in [0, 1)")
        dtype = group["preconditioner_dtype"]
        _require(
            dtype is None or dtype in _DTYPES or dtype in _DTYPES.values(),
            "preconditioner_dtype",
            dtype,
            "None, 'fp32', 'bf16', 'fp64' or a torch dtype",
        )
        for p in group["params"]:
            _require(
                p.is_floating_point(), "params", p.dtype, "PSGD needs floating-point parameters"
            )
        self.validate_family_options(group)

    def validate_family_options(self, group: dict[str, Any]) -> None:
        """Families check their own options here."""

    # ------------------------------------------------------------ family hooks
    def init_unit(
        self, state: dict, unit: Unit, group: dict, scale: float, dtype: torch.dtype
    ) -> None:
        raise NotImplementedError

    def fit_unit(self, state: dict, unit: Unit, group: dict, v: Tensor | None, h: Tensor) -> None:
        raise NotImplementedError

    def apply_unit(self, state: dict, unit: Unit, group: dict, g: Tensor) -> Tensor:
        raise NotImplementedError

    def unit_spectrum(
        self, state: dict, unit: Unit, group: dict, max_values: int
    ) -> SpectrumSummary:
        raise NotImplementedError

    def unit_matrix(self, state: dict, unit: Unit, group: dict) -> Tensor:
        raise NotImplementedError

    def needs_probe(self, group: dict) -> bool:
        """Whether whitening needs an explicit v (or can integrate it out)."""
        return True

    preconditioner_keys: ClassVar[tuple[str, ...]] = ()
    #: State tensors kept on the host whatever the parameter's device: counters that
    #: Python reads every step (a device copy would cost a sync per read on a GPU).
    host_state_keys: ClassVar[tuple[str, ...]] = ()

    # ------------------------------------------------------------------ units
    def _units(self, group: dict, with_grad_only: bool = True) -> list[Unit]:
        params = [p for p in group["params"] if p.grad is not None or not with_grad_only]
        if self.whole_vector:
            return [Unit(group["params"], True)] if params else []
        return [Unit([p], False) for p in params]

    def _storage_dtype(self, group: dict, unit: Unit) -> torch.dtype:
        dtype = group["preconditioner_dtype"]
        if dtype is None:
            return compute_dtype(unit.holder.dtype)
        return _DTYPES.get(dtype, dtype)

    @staticmethod
    def _initialized(state: dict) -> bool:
        return "L" in state

    # ------------------------------------------------------------------- RNG
    def _generator(self, device: torch.device) -> torch.Generator:
        key = str(device)
        if key not in self._generators:
            gen = torch.Generator(device=device)
            gen.manual_seed(self.seed)
            if key in self._pending_rng:
                gen.set_state(self._pending_rng.pop(key))
            self._generators[key] = gen
        return self._generators[key]

    def _randn_like(self, x: Tensor, dtype: torch.dtype | None = None) -> Tensor:
        return torch.randn(
            x.shape, generator=self._generator(x.device), device=x.device, dtype=dtype or x.dtype
        )

    def _uniform(self) -> float:
        return float(torch.rand((), generator=self._generator(torch.device("cpu"))))

    def _coin(self) -> bool:
        return self._uniform() < 0.5

    # ------------------------------------------------------------------- step
    def _update_probability(self, group: dict) -> float:
        prob = group["preconditioner_update_probability"]
        return float(prob(self._global_step) if callable(prob) else prob)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One optimisation step; see the class docstring for the closure contract."""
        draw = self._uniform()
        groups = self.param_groups
        updating = [draw < self._update_probability(g) for g in groups]
        if self.fitting == "newton":
            result, pairs = self._newton_gradients(closure, updating)
        else:
            result, pairs = None, {}
            if closure is not None:
                with torch.enable_grad():
                    result = closure()
                self._count(function_evaluations=1, gradient_evaluations=1)
        self._global_step += 1
        units = [self._units(g) for g in groups]
        scale = self._auto_scale(groups, units, pairs)
        for group, group_units, update in zip(groups, units, updating):
            chunk_units: list[Unit] = []
            chunk: list[Tensor] = []
            pending = 0
            for unit, raw in zip(group_units, self._raw_directions(group, group_units)):
                chunk_units.append(unit)
                chunk += self._step_unit(group, unit, raw, update, pairs, scale)
                pending += unit.numel
                if pending >= APPLY_CHUNK:
                    self._apply_steps(group, chunk_units, chunk)
                    chunk_units, chunk, pending = [], [], 0
            self._apply_steps(group, chunk_units, chunk)
        return result

    def _newton_gradients(
        self, closure: Callable[[], Any] | None, updating: list[bool]
    ) -> tuple[Any, dict[Tensor, tuple[Tensor, Tensor]]]:
        """Gradients (stored in `.grad`) and the (v, Hv) pairs of the probed params."""
        params, probed = [], []
        for group, update in zip(self.param_groups, updating):
            auto_pending = group["preconditioner_init_scale"] is None and any(
                not self._initialized(self.state[u.holder]) for u in self._units(group, False)
            )
            for p in group["params"]:
                if p.requires_grad:
                    params.append(p)
                    probed.append(update or auto_pending)
        rng_state = hvp.capture_rng_state()
        result, loss = hvp.evaluate(closure, params)
        probed_params = [p for p, take in zip(params, probed) if take]
        probes = [self._randn_like(p, compute_dtype(p.dtype)) for p in probed_params]
        if self._exact_products():
            in_param_dtype = [v.to(p.dtype) for v, p in zip(probes, probed_params)]
            grads, hvps = hvp.exact(loss, params, probed, in_param_dtype)
            self._count(1, 1, hessian_vector_products=int(any(probed)))
        else:
            grads, hvps = hvp.finite_difference(closure, loss, params, probed, probes, rng_state)
            shifted = int(any(probed))  # the second closure call and gradient at θ + εv
            self._count(1 + shifted, 1 + shifted)
        for p, g in zip(params, grads):
            p.grad = g
        pairs = {p: (v, h) for p, v, h in zip(probed_params, probes, hvps)}
        return result, pairs

    def _exact_products(self) -> bool:
        """Whether this step's Hv is exact: always, never, or for the first
        `finite_difference_after` steps (the reference's delayed-XOR script: 1,000)."""
        switch = self.finite_difference_after
        exact = self.hessian_vector_product == "exact"
        return exact and (switch is None or self._global_step < switch)

    def _count(
        self,
        function_evaluations: int = 0,
        gradient_evaluations: int = 0,
        hessian_vector_products: int = 0,
    ) -> None:
        self.work["function_evaluations"] += function_evaluations
        self.work["gradient_evaluations"] += gradient_evaluations
        self.work["hessian_vector_products"] += hessian_vector_products

    def _auto_scale(self, groups: list[dict], units: list[list[Unit]], pairs: dict) -> float | None:
        """One automatic initial scale shared by every unit that still needs one.

        Whitening: `(max mean|g|⁴ + δ⁴)^{-1/8}`; Newton: `(mean v²)^{1/4} (max mean|h|⁴ +
        δ⁴)^{-1/8}`, so P starts near `E[gg]^{-1/2}` or `|H|⁻¹` in scale. All-zero statistics
        postpone the start (the zero-gradient pitfall: the formula would explode).
        """
        fourth, second, damping, found = 0.0, 0.0, 0.0, False
        for group, group_units in zip(groups, units):
            if group["preconditioner_init_scale"] is not None:
                continue
            for unit in group_units:
                if self._initialized(self.state[unit.holder]):
                    continue
                found = True
                damping = max(damping, group["damping"])
                for p in unit.params:
                    if self.fitting == "newton":
                        if p not in pairs:
                            continue
                        v, h = pairs[p]
                        fourth = max(fourth, float(h.double().pow(4).mean()))
                        second = max(second, float(v.double().square().mean()))
                    elif p.grad is not None:
                        fourth = max(fourth, float(p.grad.double().pow(4).mean()))
        if not found or fourth == 0:
            return None
        scale = (fourth + damping**4) ** -0.125
        return scale * second**0.25 if self.fitting == "newton" else scale

    def _raw_directions(self, group: dict, units: list[Unit]) -> list[list[Tensor]]:
        """Each unit's directions before preconditioning: the gradients, or the momentum
        buffers updated with them (bias-corrected). Buffers sharing a correction factor
        are updated by one multi-tensor op (in effect all of them, after the first steps)."""
        beta = group["momentum"]
        by_factor: dict[float, tuple[list[Tensor], list[Tensor]]] = {}
        directions = []
        for unit in units:
            unit_directions = []
            for p in unit.params:
                g = torch.zeros_like(p) if p.grad is None else p.grad
                pstate = self.state[p]
                if "step" not in pstate:
                    pstate["step"] = torch.tensor(0.0)
                step = float(pstate["step"])
                pstate["step"] += 1
                if not beta:
                    unit_directions.append(g)
                    continue
                if "momentum_buffer" not in pstate:
                    pstate["momentum_buffer"] = torch.zeros_like(p, dtype=compute_dtype(p.dtype))
                buf = pstate["momentum_buffer"]
                buffers, gradients = by_factor.setdefault(min(step / (step + 1), beta), ([], []))
                buffers.append(buf)
                gradients.append(g.to(buf.dtype))
                unit_directions.append(buf)
            directions.append(unit_directions)
        for factor, (buffers, gradients) in by_factor.items():
            torch._foreach_mul_(buffers, factor)
            torch._foreach_add_(buffers, gradients, alpha=1 - factor)
        return directions

    def _step_unit(
        self,
        group: dict,
        unit: Unit,
        directions: list[Tensor],
        update: bool,
        pairs: dict,
        scale: float | None,
    ) -> list[Tensor]:
        """Fit the unit's preconditioner (on an updating step) and return its parameters'
        preconditioned directions, before clipping."""
        state = self.state[unit.holder]
        dtype = self._storage_dtype(group, unit)
        work = compute_dtype(dtype)
        if not self._initialized(state):
            init = group["preconditioner_init_scale"] or scale
            if init is not None:
                self.init_unit(state, unit, group, float(init), dtype)
        if update and self._initialized(state):
            v, h = self._fitting_pair(group, unit, pairs, work)
            if h is not None:
                self.fit_unit(state, unit, group, v, h)
        direction = unit.gather(directions, work)
        if self._initialized(state):
            direction = self.apply_unit(state, unit, group, direction)
        return unit.scatter(direction)

    def _fitting_pair(
        self, group: dict, unit: Unit, pairs: dict, work: torch.dtype
    ) -> tuple[Tensor | None, Tensor | None]:
        if self.fitting == "newton":
            if any(p not in pairs for p in unit.params if p.requires_grad):
                return None, None
            v = unit.gather(
                [pairs[p][0] if p in pairs else torch.zeros_like(p) for p in unit.params], work
            )
            h = unit.gather(
                [pairs[p][1] if p in pairs else torch.zeros_like(p) for p in unit.params], work
            )
        else:
            h = unit.gather(
                [torch.zeros_like(p) if p.grad is None else p.grad for p in unit.params], work
            )
            v = self._randn_like(h) if self.needs_probe(group) else None
        damping = group["damping"]
        if damping:
            # Tiny noise bounds P ≼ I/δ when E[hhᵀ] is (nearly) singular (reference §1.7).
            eps = torch.finfo(torch.float32).eps
            h = h + (damping + eps * h.abs()) * self._randn_like(h)
        return v, h

    def _apply_steps(self, group: dict, units: list[Unit], directions: list[Tensor]) -> None:
        """Decay, clip and apply the directions of some of a group's units together (one
        direction per parameter, in the units' order).

        Why together: torch's multi-tensor (`_foreach_*`) kernels do the per-tensor work of
        every parameter in a few launches; one small op per parameter each made a PSGD step
        on a GPU launch-bound (a ResNet-18 has 62 parameters). Why only some: the pending
        directions are memory beyond the state, so `step` applies them every `APPLY_CHUNK`
        elements. Every clip is per tensor or per unit, so the chunking never changes a step.
        """
        params = [p for unit in units for p in unit.params]
        if not params:
            return
        lr, wd = group["lr"], group["weight_decay"]
        rms_cap, norm_cap = group["update_clip_rms"], group["update_clip_norm"]
        if rms_cap is not None:
            directions = _rms_clipped(directions, rms_cap)
        if norm_cap is not None:
            directions = _norm_clipped(directions, [len(u.params) for u in units], norm_cap)
        steps = [d.to(p.dtype) for p, d in zip(params, directions)]
        if wd:
            torch._foreach_mul_(params, 1 - lr * wd)
        torch._foreach_add_(params, steps, alpha=-lr)

    # ------------------------------------------------------------- inspection
    def _all_units(self) -> list[tuple[dict, Unit]]:
        return [(g, u) for g in self.param_groups for u in self._units(g, with_grad_only=False)]

    def preconditioner_spectra(self, max_values: int = 256) -> dict[str, Tensor]:
        """Sorted eigenvalues of P per preconditioner, as 1-D float CPU tensors.

        Keys: ``"p0"``, ``"p1"``, … (parameter order) for per-tensor families; ``"all"``
        for whole-vector families (``"group0"``, ``"group1"``, … with several param
        groups). All eigenvalues when P has at most `max_values`, otherwise that many
        evenly spaced quantiles of the spectrum. Preconditioners not yet started are left
        out. Some values are bounded estimates; `preconditioner_spectra_info()` says which.
        """
        return {k: s.values for k, s in self.preconditioner_spectra_info(max_values).items()}

    def preconditioner_spectra_info(self, max_values: int = 256) -> dict[str, SpectrumSummary]:
        """Like `preconditioner_spectra()`, with each spectrum's exactness and error bound.

        Why: spectra come from the factors at the cost the structure allows; where an exact
        spectrum would cost far more than a training step (large LRA or Kronecker
        products), the summary is an estimate and says so (`exact`, `rank_error`).
        """
        _require(
            isinstance(max_values, int) and max_values >= 2, "max_values", max_values, "an int >= 2"
        )
        spectra = {}
        for index, (group, unit) in enumerate(self._all_units()):
            state = self.state[unit.holder]
            if self._initialized(state):
                spectra[self._spectrum_key(index)] = self.unit_spectrum(
                    state, unit, group, max_values
                )
        return spectra

    def _spectrum_key(self, index: int) -> str:
        if not self.whole_vector:
            return f"p{index}"
        return "all" if len(self.param_groups) == 1 else f"group{index}"

    def preconditioner_matrix(self) -> Tensor:
        """P over all parameters (groups, then params, each row-major) as a dense matrix.

        Block-diagonal across preconditioners; a preconditioner not yet started is the
        identity it acts as. Only for at most 4096 parameters in total.
        """
        units = self._all_units()
        total = sum(u.numel for _, u in units)
        if total > MATRIX_LIMIT:
            raise ValueError(
                f"preconditioner_matrix() forms a dense {total}×{total} matrix; it is only "
                f"available for at most {MATRIX_LIMIT} parameters. Use preconditioner_spectra()."
            )
        blocks = []
        for group, unit in units:
            state = self.state[unit.holder]
            if self._initialized(state):
                blocks.append(self.unit_matrix(state, unit, group).double().cpu())
            else:
                blocks.append(torch.eye(unit.numel, dtype=torch.float64))
        return torch.block_diag(*blocks)

    def preconditioner_numel(self) -> int:
        """Floats held by the preconditioner state (factors, caches and bounds)."""
        return sum(
            t.numel()
            for _, unit in self._all_units()
            for key, t in self.state[unit.holder].items()
            if self._is_preconditioner_key(key)
        )

    def _is_preconditioner_key(self, key: str) -> bool:
        """State keys of the preconditioner: "L", the family's keys, numbered factors ("Q0")."""
        return key == "L" or key.rstrip("0123456789") in self.preconditioner_keys

    # ------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["psgd"] = {
            "seed": self.seed,
            "global_step": self._global_step,
            "work": dict(self.work),
            "rng": {k: g.get_state() for k, g in self._generators.items()},
        }
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load as torch does, but keep every state tensor's own dtype.

        Why: `torch.optim.Optimizer` casts all state to the parameter's dtype, which would
        turn fp32 factors of bf16 parameters (and counters) into bf16.
        """
        extra = state_dict.get("psgd")
        super().load_state_dict({k: v for k, v in state_dict.items() if k != "psgd"})
        saved_ids = [i for g in state_dict["param_groups"] for i in g["params"]]
        params = [p for g in self.param_groups for p in g["params"]]
        for saved_id, p in zip(saved_ids, params):
            for key, value in state_dict["state"].get(saved_id, {}).items():
                if isinstance(value, Tensor) and key != "step":
                    device = "cpu" if key in self.host_state_keys else p.device
                    self.state[p][key] = value.to(device=device, copy=True)
        if extra is not None:
            self.seed = extra["seed"]
            self._global_step = extra["global_step"]
            saved_work = extra.get("work", {})  # absent from state saved before the counts
            self.work = {key: int(saved_work.get(key, 0)) for key in WORK_KEYS}
            self._generators = {}
            self._pending_rng = {k: v.clone() for k, v in extra["rng"].items()}
        for group in self.param_groups:
            self._validate_group(group)


def _rms_clipped(directions: list[Tensor], cap: float) -> list[Tensor]:
    """Each direction scaled to an RMS of at most `cap`: `d · cap / max(rms(d), cap)`."""
    rms = torch._foreach_div(
        torch._foreach_norm(directions), [math.sqrt(max(d.numel(), 1)) for d in directions]
    )
    torch._foreach_clamp_min_(rms, cap)
    torch._foreach_reciprocal_(rms)
    torch._foreach_mul_(rms, cap)
    return [d * scale for d, scale in zip(directions, rms)]


def _norm_clipped(directions: list[Tensor], unit_sizes: list[int], cap: float) -> list[Tensor]:
    """Each unit's directions (`unit_sizes` of them in turn) scaled together to a joint norm
    of at most `cap`."""
    clipped: list[Tensor] = []
    for size in unit_sizes:
        unit = directions[len(clipped) : len(clipped) + size]
        norm = torch.sqrt(sum(d.square().sum() for d in unit))
        clipped += [d * (cap / norm.clamp(min=cap)) for d in unit]
    return clipped
