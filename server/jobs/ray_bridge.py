"""The Ray driver of `RayExecutor`, in a process of its own.

Ray ends a driver process whose cluster head goes away, so the server never connects to
Ray itself: `RayExecutor` starts this bridge (multiprocessing "spawn", tied to the server
by `die_with_parent`) and talks to it over one duplex pipe. The bridge joins or starts the
cluster, runs each job as a `JobActor` requesting the job's resources, long-polls every
actor for its events and passes them on in order. When the cluster goes away the bridge
exits; the executor notices the closed pipe, reports it and starts a new bridge later.

Messages from the executor: ("submit", job_id, spec, resources), ("cancel", job_id),
("shutdown",). Messages to it: ("cluster", facts) now and then, ("launch", job_id, where),
("events", job_id, [event, ...]) in order, ("exit", job_id, error) once per job after its
last event, and
("down", reason) before exiting because the cluster is unreachable.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from server.jobs.executor import CANCEL_GRACE, KILL_GRACE, cancelled_status
from server.jobs.processes import die_with_parent
from server.jobs.ray_actor import POLL_SECONDS, JobActor
from server.jobs.ray_env import import_ray, init_arguments, loopback_env

#: seconds between the cluster facts sent to the executor (for /api/health)
CLUSTER_FACTS_SECONDS = 2.0
#: seconds a cancelled job's actor has to report the job's end before it is killed
CANCEL_TIMEOUT = CANCEL_GRACE + KILL_GRACE + 3.0
#: seconds the head's GCS port has to accept a connection before the cluster counts as down
HEAD_TIMEOUT = 3.0
#: seconds a stopping bridge waits for its cancelled jobs to end before killing their actors
SHUTDOWN_SECONDS = 4.0


def run_bridge(conn: Connection, parent_pid: int, config: dict[str, Any]) -> None:
    """Join or start the cluster `config` names and serve the executor until it says stop
    (or the cluster goes away). Every argument is a plain value (spawn pickles them)."""
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server stops us in order
    with tempfile.TemporaryDirectory(prefix="psgd-ray-home-") as home:  # gone when we are
        os.environ.update(loopback_env(Path(home)))
        _join_and_serve(conn, config)


def _join_and_serve(conn: Connection, config: dict[str, Any]) -> None:
    address = config["address"]
    if address == "local":  # else ray.init joins the cluster it names instead
        os.environ.pop("RAY_ADDRESS", None)
    try:
        ray = import_ray()
        ray.init(**init_arguments(address, config["num_cpus"], config["node_ip_address"]))
    except Exception as error:
        with contextlib.suppress(OSError):
            conn.send(("down", f"could not reach the Ray cluster at {address}: {_line(error)}"))
        return
    try:
        Bridge(ray, conn, config["max_retries"]).serve()
    except Exception as error:  # the cluster went away under a call, or the server has
        with contextlib.suppress(OSError):  # (then nobody hears this)
            conn.send(("down", f"lost the Ray cluster at {address}: {_line(error)}"))
    finally:
        with contextlib.suppress(Exception):
            ray.shutdown()


class HeadGone(Exception):
    """The cluster's head does not answer (not an OSError: that means the server has gone)."""


@dataclass(eq=False)
class _Run:
    """One job on the cluster: its actor and what of it has been passed on."""

    job_id: str
    spec: dict[str, Any]
    resources: dict[str, Any]
    actor: Any = None
    launched: bool = False
    attempt: int = 0
    cancel_by: float | None = None  # when an unanswered cancel kills the actor
    started_sent: bool = False
    last_step: int = 0
    kinds_at_last_step: set[str] = field(default_factory=set)


class Bridge:
    """Owns the job actors; one loop serves the pipe and the actors' answers."""

    def __init__(self, ray: Any, conn: Connection, max_retries: int) -> None:
        self.ray, self.conn, self.max_retries = ray, conn, max_retries
        self.actor_class = ray.remote(JobActor)
        self.runs: dict[str, _Run] = {}
        self.calls: dict[Any, tuple[_Run, str]] = {}  # pending ObjectRef → (run, kind)
        self.stopping_since: float | None = None
        self.facts_at = 0.0
        self.gcs_address: str | None = None  # None in a Ray Client session (ray://)
        with contextlib.suppress(Exception):
            self.gcs_address = ray.get_runtime_context().gcs_address

    def serve(self) -> None:
        while True:
            now = time.monotonic()
            if now >= self.facts_at:
                self.facts_at = now + CLUSTER_FACTS_SECONDS
                self.conn.send(("cluster", self.facts()))
            while self.conn.poll(0 if self.calls else 0.1):
                self.command(self.conn.recv())
            if self.stopping_since is not None and (
                not self.runs or now - self.stopping_since > SHUTDOWN_SECONDS
            ):
                for run in list(self.runs.values()):
                    self.ray.kill(run.actor)
                return
            self.answers()
            for run in list(self.runs.values()):
                if run.cancel_by is not None and run.cancel_by <= now:
                    run.cancel_by = None
                    self.ray.kill(run.actor)  # its pending poll then reports the death

    def facts(self) -> dict[str, Any]:
        """The cluster's size, after checking that its head still answers: a driver whose
        head has gone would otherwise wait a minute for it before Ray ends the process."""
        self.check_head()
        nodes = [node for node in self.ray.nodes() if node.get("Alive")]
        resources = self.ray.cluster_resources()
        return {
            "nodes": len(nodes),
            "cpus": resources.get("CPU", 0.0),
            "gpus": resources.get("GPU", 0.0),
            "memory_mb": int(resources.get("memory", 0) // 2**20),
        }

    def check_head(self) -> None:
        if self.gcs_address is None:
            return
        host, _, port = self.gcs_address.rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), HEAD_TIMEOUT).close()
        except OSError as error:
            raise HeadGone(f"its head at {self.gcs_address} does not answer ({error})") from error

    def command(self, message: tuple) -> None:
        kind = message[0]
        if kind == "submit":
            _, job_id, spec, resources = message
            run = _Run(job_id, spec, resources)
            self.runs[job_id] = run
            self.place(run)
        elif kind == "cancel":
            run = self.runs.get(message[1])
            if run is not None:
                self.cancel(run)
        elif kind == "shutdown":
            self.stopping_since = time.monotonic()
            for run in list(self.runs.values()):
                self.cancel(run)

    def place(self, run: _Run) -> None:
        """Create the job's actor; Ray starts it once a node has the job's resources."""
        job = run.resources
        missing = self.missing(job)
        if missing is not None:  # Ray would keep it waiting for ever
            self.forget(run)
            self.conn.send(("exit", run.job_id, missing))
            return
        run.actor = self.actor_class.options(
            num_cpus=job["num_cpus"],
            num_gpus=job["num_gpus"],
            memory=job["memory"],
            max_restarts=0,
            max_task_retries=0,
            max_concurrency=4,  # `events` long-polls while `cancel` comes in
        ).remote(
            run.job_id,
            run.spec,
            job["limits"],
            job["memory_limit_mb"],
            job["threads"],
            job["num_gpus"] > 0,
        )
        run.launched = False
        self.calls[run.actor.where.remote()] = (run, "where")

    def missing(self, job: dict[str, Any]) -> str | None:
        """Why no node of the cluster could ever run the job, if so: Ray would keep it
        waiting for ever (CPUs, GPUs, the memory of its estimate)."""
        wanted = {"CPU": job["num_cpus"], "GPU": job["num_gpus"], "memory": job["memory"]}
        best = dict.fromkeys(wanted, 0.0)
        for node in self.ray.nodes():
            if node.get("Alive"):
                for name in wanted:
                    best[name] = max(best[name], node["Resources"].get(name, 0.0))
        for name, amount in wanted.items():
            if amount and best[name] < amount:
                if name == "memory":
                    need, has = f"{amount / 2**20:.0f} MB of memory", f"{best[name] / 2**20:.0f} MB"
                else:
                    need, has = f"{amount:g} {name}", f"{best[name]:g}"
                return f"no node of the Ray cluster has {need} for this job (the largest: {has})"
        return None

    def cancel(self, run: _Run) -> None:
        if not run.launched:  # still waiting for resources: nothing has run
            self.ray.kill(run.actor)
            self.forget(run)
            self.conn.send(("events", run.job_id, [cancelled_status("cancelled before start")]))
            self.conn.send(("exit", run.job_id, "cancelled before start"))
        elif run.cancel_by is None:
            run.actor.cancel.remote()
            run.cancel_by = time.monotonic() + CANCEL_TIMEOUT

    def answers(self) -> None:
        """Handle the actors' answers that have arrived (waits briefly for the first)."""
        if not self.calls:
            return
        refs = list(self.calls)
        ready, _ = self.ray.wait(refs, num_returns=1, timeout=0.1)
        if ready:
            ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0)
        for ref in ready:
            run, kind = self.calls.pop(ref)
            if self.runs.get(run.job_id) is not run:
                continue  # cancelled before start meanwhile
            try:
                answer = self.ray.get(ref)
            except (self.ray.exceptions.RayActorError, self.ray.exceptions.WorkerCrashedError) as e:
                self.died(run, e)
                continue
            if kind == "where":
                run.launched = True
                if run.attempt == 0:
                    self.conn.send(("launch", run.job_id, answer))
            else:
                events, end = answer
                if run.attempt:
                    events = [event for event in events if self.fresh(run, event)]
                for event in events:
                    self.note(run, event)
                if events:
                    self.conn.send(("events", run.job_id, events))
                if end is not None:
                    self.forget(run)
                    self.ray.kill(run.actor)
                    self.conn.send(("exit", run.job_id, end[0]))
                    continue
            self.calls[run.actor.events.remote(POLL_SECONDS)] = (run, "events")

    def died(self, run: _Run, error: Exception) -> None:
        """The job's actor (its Ray worker process, or its node) died."""
        reason = f"its Ray worker died ({_line(error)})"
        if run.cancel_by is not None:
            event = cancelled_status(f"cancelled; {reason}", run.last_step)
            self.forget(run)
            self.conn.send(("events", run.job_id, [event]))
            self.conn.send(("exit", run.job_id, f"{reason} after a cancel request"))
        elif run.attempt < self.max_retries:
            run.attempt += 1
            self.place(run)
        else:
            self.forget(run)
            if run.attempt:
                reason += f", after {run.attempt} retries"
            self.conn.send(("exit", run.job_id, f"{reason} before the job finished"))

    def fresh(self, run: _Run, event: dict[str, Any]) -> bool:
        """Whether a retry's event is new: a retry replays the job from its start (same
        seed), and only what comes after the failed attempt's last event is passed on."""
        kind, step = event.get("type"), event.get("step")
        if kind == "status":
            return True
        if kind == "started":
            return not run.started_sent
        if not isinstance(step, int) or step > run.last_step:
            return True
        return step == run.last_step and kind not in run.kinds_at_last_step

    def note(self, run: _Run, event: dict[str, Any]) -> None:
        kind, step = event.get("type"), event.get("step")
        if kind == "started":
            run.started_sent = True
        if isinstance(step, int) and step > run.last_step:
            run.last_step, run.kinds_at_last_step = step, set()
        if isinstance(step, int) and step == run.last_step:
            run.kinds_at_last_step.add(str(kind))

    def forget(self, run: _Run) -> None:
        self.runs.pop(run.job_id, None)
        for ref, (owner, _) in list(self.calls.items()):
            if owner is run:
                del self.calls[ref]


def _line(error: BaseException) -> str:
    """An exception as one short line (Ray's are pages long)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."
