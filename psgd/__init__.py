"""PSGD: preconditioned SGD with preconditioners fitted on Lie groups.

`import psgd` needs only torch. The optimizers are `torch.optim.Optimizer` subclasses:

* `Kron`  — Kronecker-factored, one preconditioner per tensor (the general-purpose choice).
* `LRA`   — low-rank plus diagonal over all parameters, `Q = (I + UVᵀ) diag(d)`.
* `XMat`  — diagonal plus anti-diagonal over all parameters.
* `Diag`  — diagonal over all parameters.
* `Dense` — one dense preconditioner over all parameters (small problems).

Each fits P either by gradient whitening (`fitting="whiten"`, the default) or from
Hessian-vector products (`fitting="newton"`, needs `step(closure)`).
"""

from psgd.optimizers import LRA, Dense, Diag, Kron, XMat
from psgd.schedules import ExponentialAnneal
from psgd.spectra import SpectrumSummary

__all__ = ["LRA", "Dense", "Diag", "ExponentialAnneal", "Kron", "SpectrumSummary", "XMat"]
__version__ = "0.1.0"
