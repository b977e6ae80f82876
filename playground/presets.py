"""One-click setups of the UI, and the share-URL encoding of a setup.

A setup is the UI form as a dict: `task` (spec), `optimizers` (names), `hyperparameters`
(name → fields; unset ones come from the task's preset on the server), `seeds`, `steps`,
`epochs`, `device`, `target`. `comparison_spec(setup)` turns it into the API's body.
"""

from __future__ import annotations

import base64
import json
from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    "Rosenbrock: PSGD vs Adam vs L-BFGS": {
        "task": {"name": "rosenbrock"},
        "optimizers": ["psgd-dense", "adam", "lbfgs"],
        "hyperparameters": {"adam": {"lr": 0.05}},
        "seeds": [0],
        "steps": 300,
    },
    "Ill-conditioned quadratic": {
        "task": {"name": "quadratic", "dim": 20, "condition_number": 1000.0},
        "optimizers": ["psgd-dense", "adam", "sgd"],
        "hyperparameters": {},
        "seeds": [0, 1],
        "steps": 500,
        "target": 1e-8,
    },
    "Saddle escape": {
        "task": {"name": "saddle"},
        "optimizers": ["psgd-dense", "sgd", "adam"],
        "hyperparameters": {},
        "seeds": [0],
        "steps": 200,
    },
    "Delayed XOR (T=32)": {
        "task": {"name": "xor", "sequence_length": 32},
        "optimizers": ["psgd-lra", "adam"],
        "hyperparameters": {},
        "seeds": [0],
        "steps": 5000,
    },
    "Delayed XOR (T=64, the paper's setting — a long run)": {
        "task": {"name": "xor", "sequence_length": 64},
        "optimizers": ["psgd-lra", "adam"],
        "hyperparameters": {},
        "seeds": [0],
        "steps": 30000,
    },
    "CIFAR-10 subset: PSGD vs SGD vs AdamW": {
        "task": {"name": "cifar10"},
        "optimizers": ["psgd-kron", "sgd-nesterov", "adamw"],
        "hyperparameters": {},
        "seeds": [0],
        "epochs": 5,
    },
}


def comparison_spec(setup: dict[str, Any]) -> dict[str, Any]:
    """The POST /api/comparisons body of a setup."""
    hyper = setup.get("hyperparameters") or {}
    spec: dict[str, Any] = {
        "task": setup["task"],
        "optimizers": [{**hyper.get(name, {}), "name": name} for name in setup["optimizers"]],
        "seeds": list(setup.get("seeds") or [0]),
        "device": setup.get("device") or "auto",
    }
    for key in ("steps", "epochs", "target"):
        if setup.get(key) is not None:
            spec[key] = setup[key]
    return spec


def setup_of_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The setup of a comparison's spec (the inverse of `comparison_spec`): what the form
    shows for a comparison opened from History or a `?comparison=` link."""
    optimizers = spec.get("optimizers") or []
    return {
        "task": dict(spec["task"]),
        "optimizers": [o["name"] for o in optimizers],
        "hyperparameters": {
            o["name"]: {k: v for k, v in o.items() if k != "name"} for o in optimizers if len(o) > 1
        },
        **{key: spec.get(key) for key in ("seeds", "steps", "epochs", "device", "target")},
    }


def encode_setup(setup: dict[str, Any]) -> str:
    raw = json.dumps(setup, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_setup(text: str) -> dict[str, Any]:
    """The setup of a share URL's `setup` parameter; ValueError when it is not one."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        setup = json.loads(raw)
    except (ValueError, json.JSONDecodeError) as error:
        raise ValueError(f"not a shared setup: {error}") from error
    if not isinstance(setup, dict) or not isinstance(setup.get("task"), dict):
        raise ValueError("not a shared setup: no task")
    return setup
