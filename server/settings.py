"""Server settings: defaults, overridable by `PSGD_PLAYGROUND_*` environment variables.

    PSGD_PLAYGROUND_PORT=9000 PSGD_PLAYGROUND_TOKEN=secret psgd-playground serve

List values (`cors_origins`) are JSON in the environment, e.g.
`PSGD_PLAYGROUND_CORS_ORIGINS='["http://localhost:5173"]'`; `trusted_hosts` also takes
a comma-separated list (`PSGD_PLAYGROUND_TRUSTED_HOSTS=*` or `=lab.example,10.0.0.5`).
`data_dir` holds the job database (`jobs.sqlite`); note that `PSGD_PLAYGROUND_DATA_DIR` is
also where CIFAR-10 is looked for (server/tasks/cifar.py), so one variable puts both in one
folder.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from server.jobs.ray_env import MISSING_RAY

ENV_PREFIX = "PSGD_PLAYGROUND_"
DB_NAME = "jobs.sqlite"
#: `host:port` of a head's GCS, or `ray://host:port` of its Ray Client server
_RAY_ADDRESS = re.compile(r"(ray://)?(?P<host>[\w.-]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})")


def default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "psgd-playground"


class Settings(BaseSettings):
    """Everything the API server reads at start; see README "API" for the table."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    host: str = Field("127.0.0.1", description="interface to bind (loopback by default)")
    port: int = Field(8000, ge=0, le=65535, description="TCP port (0 = any free port)")
    data_dir: Path = Field(
        default_factory=default_data_dir, description="folder of the job database"
    )
    executor: Literal["local", "ray"] = Field(
        "local",
        description="where jobs run: this machine, or a Ray cluster (README "
        '"Scaling out"; needs the ray extra)',
    )
    ray_address: str = Field(
        "local",
        description="the Ray cluster (executor=ray): 'local' starts a private one-machine "
        "cluster on 127.0.0.1, 'auto' joins the one started on this machine, 'host:port' a "
        "head's GCS address, 'ray://host:port' a head's Ray Client server",
    )
    ray_num_cpus: int | None = Field(
        None, ge=1, description="CPUs of the private cluster (ray_address=local; default: all)"
    )
    ray_cpus_per_job: float | None = Field(
        None, gt=0, description="CPUs a job reserves on the cluster (default: threads_per_job)"
    )
    ray_gpus_per_job: float = Field(
        1.0, gt=0, description="GPUs a cuda job reserves on the cluster (a fraction shares one)"
    )
    ray_max_retries: int = Field(
        0, ge=0, description="times a job whose Ray worker or node died is run again"
    )
    ray_node_ip_address: str | None = Field(
        None,
        description="this server's address as the cluster sees it (default: 127.0.0.1 for a "
        "local, auto or loopback cluster, else Ray's own guess)",
    )
    ray_reconnect_seconds: float = Field(
        5.0, gt=0, description="wait between attempts to reach a Ray cluster that is down"
    )
    concurrency: int | None = Field(
        None, ge=1, description="jobs run at once (default: GPUs, else CPU cores / 2)"
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="device for jobs whose spec says auto; cpu also forbids cuda jobs"
    )
    max_steps: int = Field(1_000_000, ge=1, description="steps limit of one job")
    max_seconds: float = Field(6 * 3600, gt=0, description="wall-clock limit of one job")
    max_queued: int = Field(100, ge=1, description="queued jobs before new ones get 429")
    max_request_bytes: int = Field(1_000_000, ge=1, description="request body limit (413)")
    max_metric_points: int = Field(2000, ge=1, description="metrics rows kept per job (≈)")
    token: str | None = Field(
        None, repr=False, description="when set, mutating requests need `Bearer <token>`"
    )
    cors_origins: list[str] = Field(default_factory=list, description="allowed CORS origins")
    requeue_interrupted: bool = Field(
        False, description="rerun jobs a stopped server left running, instead of interrupted"
    )
    memory_limit_mb: int | None = Field(
        None,
        ge=0,
        description="address-space limit of each CPU worker process in MB (default: 3/4 of "
        "the machine's memory / concurrency, at least 2048; 0: no limit)",
    )
    pool_size: int | None = Field(
        None,
        ge=0,
        description="warm worker processes kept idle, torch imported, so that a job starts "
        "at once (default: concurrency; 0: none, each job starts a new one)",
    )
    threads_per_job: int | None = Field(
        None, ge=1, description="torch threads of each job (default: 1)"
    )
    suite_results_dir: Path | None = Field(
        None,
        description="folder of the benchmark suites' reports (<suite>/<mode>/report.json); "
        "default: benchmarks/results of the source checkout the server runs from, if any",
    )
    heartbeat_seconds: float = Field(15.0, gt=0, description="SSE keep-alive comment interval")
    max_jobs_per_minute: int = Field(
        300, ge=1, description="jobs created per minute, cancelled ones included (429 beyond)"
    )
    max_store_mb: int = Field(
        2048, ge=1, description="job store size at which new jobs get 429 (MiB)"
    )
    trusted_hosts: Annotated[list[str] | None, NoDecode] = Field(
        None,
        min_length=1,
        description="Host names answered besides loopback ones, any port (default: the "
        "bound host if loopback, else any name); '*' = any",
    )

    @field_validator("executor")
    @classmethod
    def _executor_available(cls, value: str) -> str:
        if value == "ray" and importlib.util.find_spec("ray") is None:
            raise ValueError(MISSING_RAY)
        return value

    @field_validator("ray_address")
    @classmethod
    def _known_address(cls, value: str) -> str:
        value = value.strip()
        if value in ("local", "auto"):
            return value
        found = _RAY_ADDRESS.fullmatch(value)
        if found is None or not 0 < int(found["port"]) < 65536:
            raise ValueError(
                f"expected 'local', 'auto', 'host:port' or 'ray://host:port', got {value!r}"
            )
        return value

    @field_validator("trusted_hosts", mode="before")
    @classmethod
    def _host_list(cls, value: Any) -> Any:
        """JSON or comma-separated; blank means unset (the default)."""
        if isinstance(value, str):
            text = value.strip()
            if not text:
                return None
            return json.loads(text) if text.startswith("[") else text.split(",")
        return value

    @field_validator("trusted_hosts")
    @classmethod
    def _no_blank_host(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not all(host.strip() for host in value):
            raise ValueError("a trusted host is blank")
        return value

    @field_validator("token")
    @classmethod
    def _blank_token_is_none(cls, value: str | None) -> str | None:
        return value or None

    @property
    def db_path(self) -> Path:
        return self.data_dir.expanduser() / DB_NAME
