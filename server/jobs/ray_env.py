"""How this server starts or joins a Ray cluster without Ray reaching past where it must.

Ray's processes report usage statistics and, unless told the cluster is local, probe a
cloud-metadata address from the dashboard agent. Every Ray start of the playground (the
private `local` cluster, the tests' heads, the benchmark) therefore runs with

* `HOME` holding `ray_bootstrap_config.yaml` with `provider: {type: local}`,
* `RAY_USAGE_STATS_ENABLED=0` and `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`,
* no dashboard, and the node on 127.0.0.1 (`ray.init(..., include_dashboard=False,
  _node_ip_address="127.0.0.1")`, `ray start --head --node-ip-address=127.0.0.1
  --include-dashboard=false`).

`loopback_env` gives the variables; `init_arguments` the `ray.init` keywords for an address
setting; `head_command` the `ray start` command line of a one-machine head.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

BOOTSTRAP_FILE = "ray_bootstrap_config.yaml"
BOOTSTRAP_CONFIG = "provider:\n  type: local\n"
LOOPBACK = "127.0.0.1"
MISSING_RAY = "executor 'ray' needs the ray package: pip install 'psgd-playground[ray]'"


def import_ray() -> Any:
    """The ray module, or an ImportError that names the extra to install."""
    try:
        import ray
    except ImportError as error:
        raise ImportError(MISSING_RAY) from error
    return ray


def loopback_env(home: Path) -> dict[str, str]:
    """The environment variables every Ray process started here needs; `home` (a folder of
    the caller's, made HOME) gets the bootstrap file that tells Ray the cluster is local."""
    (home / BOOTSTRAP_FILE).write_text(BOOTSTRAP_CONFIG)
    return {
        "HOME": str(home),
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    }


def is_loopback(address: str) -> bool:
    host = address.removeprefix("ray://").rpartition(":")[0]
    return host in ("127.0.0.1", "localhost", "::1", "[::1]")


def init_arguments(
    address: str, num_cpus: int | None = None, node_ip_address: str | None = None
) -> dict[str, Any]:
    """`ray.init` keywords for the `ray_address` setting: `local` starts a private head on
    127.0.0.1 without a dashboard; any other address joins that cluster."""
    quiet = {"logging_level": "WARNING", "log_to_driver": False}
    if address == "local":
        return {
            **quiet,
            "num_cpus": num_cpus,
            "include_dashboard": False,
            "_node_ip_address": LOOPBACK,
        }
    arguments: dict[str, Any] = {**quiet, "address": address}
    if address.startswith("ray://"):  # a Ray Client session: the node is the head's
        return arguments
    # `auto` joins the cluster RAY_ADDRESS names, else the one started on this machine
    target = (os.environ.get("RAY_ADDRESS") or f"{LOOPBACK}:0") if address == "auto" else address
    if node_ip_address is None and is_loopback(target):
        node_ip_address = LOOPBACK
    if node_ip_address is not None:
        arguments["_node_ip_address"] = node_ip_address
    return arguments


def head_command(ray: str, port: int, temp_dir: str, num_cpus: int) -> list[str]:
    """`ray start` of a one-machine head on 127.0.0.1 that runs until it gets SIGTERM
    (`--block`: it then stops the processes it started)."""
    return [
        ray,
        "start",
        "--head",
        "--block",
        f"--port={port}",
        f"--node-ip-address={LOOPBACK}",
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--num-cpus={num_cpus}",
        f"--temp-dir={temp_dir}",
    ]
