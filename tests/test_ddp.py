"""DistributedDataParallel: ranks that see different data stay bit-identical.

Two gloo ranks on loopback each train their own copy of a small model on their own data
shard; only DDP's gradient all-reduce makes their gradients agree. A PSGD optimizer built
with the same seed on every rank must then draw the same update decisions and probes, so
parameters and every preconditioner state tensor stay bit-identical across ranks.

Rendezvous uses a `FileStore` in a temporary directory (no TCP listener at all: a
`TCPStore` listens on every interface) and gloo is pinned to the loopback device.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import psgd

WORLD_SIZE = 2
STEPS = 20
CASES = {
    "Kron": (psgd.Kron, {}),
    "LRA": (psgd.LRA, {"rank": 4}),
}

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed missing")


def _train_on_rank(rank: int, store_path: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    store = dist.FileStore(store_path, WORLD_SIZE)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=WORLD_SIZE)
    try:
        results = {}
        for name, (cls, options) in CASES.items():
            torch.manual_seed(0)  # the same initial model on every rank
            model = DistributedDataParallel(
                nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2))
            )
            opt = cls(
                model.parameters(),
                lr=0.02,
                fitting="whiten",
                preconditioner_update_probability=0.5,
                seed=1234,
                **options,
            )
            shard = torch.Generator().manual_seed(100 + rank)  # a different shard per rank
            target = torch.tensor([[1.0, -2.0], [0.5, 0.3], [-1.0, 0.7], [2.0, 0.1]])
            local_losses = []
            for _ in range(STEPS):
                x = torch.randn(16, 4, generator=shard)
                y = torch.sin(x @ target)
                opt.zero_grad()
                loss = F.mse_loss(model(x), y)
                loss.backward()
                opt.step()
                local_losses.append(loss.item())
            params = list(model.parameters())
            results[name] = {
                "params": [p.detach().clone() for p in params],
                "state": {
                    f"{index}/{key}": value.detach().clone()
                    for index, p in enumerate(params)
                    for key, value in opt.state[p].items()
                    if isinstance(value, torch.Tensor)
                },
                "losses": local_losses,
                "spectra": opt.preconditioner_spectra(),
            }
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def rank_results(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("ddp")
    old_ifname = os.environ.get("GLOO_SOCKET_IFNAME")
    if Path("/sys/class/net/lo").exists():
        os.environ["GLOO_SOCKET_IFNAME"] = "lo"  # inherited by the spawned ranks
    try:
        mp.spawn(
            _train_on_rank,
            args=(str(out_dir / "store"), str(out_dir)),
            nprocs=WORLD_SIZE,
            join=True,
        )
    finally:
        if old_ifname is None:
            os.environ.pop("GLOO_SOCKET_IFNAME", None)
        else:
            os.environ["GLOO_SOCKET_IFNAME"] = old_ifname
    return [torch.load(out_dir / f"rank{rank}.pt") for rank in range(WORLD_SIZE)]


@pytest.mark.parametrize("name", list(CASES))
def test_ddp_ranks_with_different_data_keep_identical_params_and_preconditioners(
    rank_results, name
):
    first, second = (results[name] for results in rank_results)
    # The shards really differ: the ranks' local losses are not the same.
    assert first["losses"] != second["losses"]

    assert len(first["params"]) == len(second["params"]) == 4
    for a, b in zip(first["params"], second["params"]):
        assert torch.equal(a, b)

    assert set(first["state"]) == set(second["state"])
    for key, value in first["state"].items():
        assert torch.equal(value, second["state"][key]), key


def test_ddp_ranks_actually_fitted_their_preconditioners(rank_results):
    kron = rank_results[0]["Kron"]
    # 20 draws with probability 0.5: some, but not all, steps fitted the preconditioner.
    updates = {key: int(value) for key, value in kron["state"].items() if key.endswith("updates")}
    assert len(updates) == 4
    assert all(0 < count < STEPS for count in updates.values()), updates
    # The dense factor of the first weight (6 x 4: a dense 4 x 4 side) moved off s·I.
    q = kron["state"]["0/Q1"]
    assert q.shape == (4, 4)
    assert not torch.allclose(q, q[0, 0] * torch.eye(4))
    for name in CASES:
        spectra = rank_results[0][name]["spectra"]
        assert spectra
        values = torch.cat(list(spectra.values()))
        assert values.max() > 1.01 * values.min(), name
