"""The registry's PSGD schemas and the psgd classes agree on defaults and bounds: the
registry reads them from psgd, so an optimizer built from an empty spec is the one psgd
builds from no arguments (it once took lr 1e-3 for Newton fitting, where psgd takes 1e-2)."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from server.optimizers import REGISTRY, PsgdConfig

PSGD_NAMES = [name for name, cls in REGISTRY.items() if issubclass(cls, PsgdConfig)]


def _params() -> list[torch.Tensor]:
    return [torch.zeros(3, 2, requires_grad=True), torch.zeros(4, requires_grad=True)]


@pytest.mark.parametrize("fitting", ["whiten", "newton"])
@pytest.mark.parametrize("name", PSGD_NAMES)
def test_registry_defaults_are_psgds_own(name: str, fitting: str) -> None:
    config = REGISTRY[name].model_validate({"name": name, "fitting": fitting})
    from_registry = config.build(_params(), seed=0)
    from_psgd = config.psgd_class(_params(), fitting=fitting, seed=0)
    ours, theirs = from_registry.param_groups[0], from_psgd.param_groups[0]
    shared = (set(ours) & set(theirs)) - {"params"}
    assert {"lr", "preconditioner_lr", "damping", "lipschitz_beta"} <= shared
    for key in sorted(shared):
        assert ours[key] == theirs[key], f"{name} {fitting}: {key}"
    assert from_registry.hessian_vector_product == from_psgd.hessian_vector_product


def test_an_explicit_lr_is_kept_in_either_fitting_mode() -> None:
    for fitting in ("whiten", "newton"):
        config = REGISTRY["psgd-kron"].model_validate(
            {"name": "psgd-kron", "fitting": fitting, "lr": 0.3}
        )
        assert config.lr == 0.3


@pytest.mark.parametrize("name", PSGD_NAMES)
def test_preconditioner_lr_bounds_are_psgds(name: str) -> None:
    cls = REGISTRY[name]
    top = cls.model_validate({"name": name, "preconditioner_lr": 2.0})
    top.build(_params(), seed=0)  # psgd accepts the registry's largest value
    with pytest.raises(ValidationError):
        cls.model_validate({"name": name, "preconditioner_lr": 2.0001})
    with pytest.raises(ValueError, match="preconditioner_lr"):
        cls.psgd_class(_params(), preconditioner_lr=2.0001)
