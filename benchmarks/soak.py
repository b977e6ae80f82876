"""Soak test: load and faults against a real server on loopback, then consistency checks.

What it does
    Starts `psgd-playground serve` on 127.0.0.1 (a free port, a fresh data folder, its own
    process group) and submits, in waves, small jobs and 2 × 2 comparisons (Rosenbrock and
    quadratics, tens of steps; about one job in eight diverges, about one in eight is
    cancelled). SSE clients follow jobs and comparisons meanwhile: some read to the end, some
    hang up early, some hang up and resume with Last-Event-ID, and all of them reconnect with
    Last-Event-ID when the server goes away. Each wave `kill -9`s a worker process; between
    waves the run records every ended job (its record and events), `kill -9`s the server at a
    moment a worker has just started (its set-up sends nothing for a second or more, so only
    dying with its server ends it), and restarts the server on the same folder. Finally it
    waits for every job to end, stops the server with Ctrl-C and checks.

Checks (each failure is a violation; any violation makes the exit code 1)
    lost / changed   every job that had ended before a kill is still there, its record and
                     events unchanged; every submitted job is listed, and no other
    final status     every job has exactly one final status event (succeeded, diverged,
                     failed, cancelled or interrupted), as its last event and matching the
                     job's status; no job has two `started` events (it ran twice)
    unsettled        no job is still queued or running once the run settles
    orphans          no process of a killed server (worker or helper, found by this run's
                     data folder in its environment) is alive --orphan-grace s after the kill
    leftovers        no such process at all after the final Ctrl-C
    sse              every client's event ids, across its reconnections, are strictly
                     increasing, without duplicates, and are exactly the stored events of the
                     jobs it followed (a prefix of them for a client that hung up for good);
                     every stream ends by itself once its jobs have ended
    http             no 5xx answer, no refused submission other than 429

How to run
    .venv/bin/python benchmarks/soak.py --quick   # CI's smoke run (tests/test_soak.py)
    .venv/bin/python benchmarks/soak.py           # hundreds of jobs, dozens of clients
    Flags override the mode's numbers: --jobs --clients --server-kills --worker-kills
    --concurrency --timeout (hard limit of the whole run) --orphan-grace --seed --out
    --keep-data (keep the data folder and print where it is).

Results: a table on stdout; `report.json` and each server's log in
benchmarks/results/soak/<UTC time>-<mode>/ (git-ignored; --out elsewhere). Exit codes: 0 no
violation, 1 violations, 2 the run itself failed (the server did not start, the hard
timeout), 130 Ctrl-C. Every process it started is killed on the way out, whatever happens.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from server.events import ACTIVE_STATUSES as ACTIVE
from server.events import ENDED_STATUSES as ENDED
from server.settings import DB_NAME

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "soak"
FRESH_WORKER_AGE = 0.3  # s: a worker this young still imports torch for a second or more
MAX_CONNECTIONS = 200  # per SSE client, reconnections included
SHOWN_DETAILS = 40  # violations printed in the table (the JSON has them all)


@dataclass(frozen=True)
class Plan:
    mode: str
    jobs: int  # jobs submitted in all; a comparison counts its 4 jobs
    clients: int
    server_kills: int
    worker_kills: int
    concurrency: int
    timeout: float  # hard limit of the whole run, s
    orphan_grace: float  # s a killed server's processes may take to die
    seed: int


MODES = {
    "quick": {"jobs": 20, "clients": 6, "server_kills": 1, "worker_kills": 1, "timeout": 300},
    "full": {"jobs": 240, "clients": 40, "server_kills": 2, "worker_kills": 3, "timeout": 1500},
}


class HarnessError(Exception):
    """The run itself could not go on (not a finding about the server)."""


class HardTimeout(HarnessError):
    pass


# ---------------------------------------------------------------------- findings
class Findings:
    """Violations and counters, shared by the main thread and the SSE client threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.violations: list[dict[str, str]] = []
        self.counts: Counter[str] = Counter()
        self.notes: list[str] = []

    def violation(self, check: str, detail: str) -> None:
        with self._lock:
            self.violations.append({"check": check, "detail": detail})

    def count(self, name: str, by: int = 1) -> None:
        with self._lock:
            self.counts[name] += by

    def note(self, text: str) -> None:
        with self._lock:
            self.notes.append(text)


# ---------------------------------------------------------------------- workload
@dataclass
class Submission:
    kind: str  # "job" or "comparison"
    body: dict[str, Any]
    size: int  # jobs it creates
    id: str | None = None
    job_ids: list[str] = field(default_factory=list)

    @property
    def events_path(self) -> str:
        return f"/api/{self.kind}s/{self.id}/events"


TASKS = ({"name": "rosenbrock"}, {"name": "quadratic", "dim": 4}, {"name": "quadratic", "dim": 10})
OPTIMIZERS = ("adam", "sgd", "psgd-dense", "psgd-kron", "psgd-diag")
DIVERGING = {"task": {"name": "rosenbrock"}, "optimizer": {"name": "sgd", "lr": 1.0}}
#: one per server kill, in the middle of the wave before it: it is running at the kill
INTERRUPTED = {"task": {"name": "rosenbrock"}, "optimizer": {"name": "adam"}, "steps": 50_000}
#: a job long enough (seconds) to be running when a worker is killed: the workload's jobs of
#: tens of steps end in milliseconds on a worker forked from the warm fork server
KILLED = {"task": {"name": "rosenbrock"}, "optimizer": {"name": "adam"}, "steps": 5_000}


def workload(total_jobs: int, rng: random.Random) -> list[Submission]:
    """Single jobs of tens of steps (one in eight diverges) and, as every fourth item,
    a 2 optimizers × 2 seeds comparison, adding up to `total_jobs`."""
    items: list[Submission] = []
    left = total_jobs
    while left > 0:
        steps = rng.randint(20, 60)
        if left >= 4 and len(items) % 4 == 3:
            names = rng.sample(OPTIMIZERS, 2)
            body = {
                "task": dict(rng.choice(TASKS)),
                "optimizers": [{"name": name} for name in names],
                "seeds": [0, 1],
                "steps": steps,
            }
            items.append(Submission("comparison", body, 4))
        elif len(items) % 8 == 1:
            items.append(Submission("job", {**DIVERGING, "steps": steps}, 1))
        else:
            body = {"task": dict(rng.choice(TASKS)), "optimizer": {"name": rng.choice(OPTIMIZERS)}}
            items.append(Submission("job", {**body, "steps": steps, "seed": rng.randint(0, 9)}, 1))
        left -= items[-1].size
    return items


def split(items: list[Any], parts: int) -> list[list[Any]]:
    """`items` in `parts` consecutive runs of (nearly) equal length."""
    bounds = [round(i * len(items) / parts) for i in range(parts + 1)]
    return [items[bounds[i] : bounds[i + 1]] for i in range(parts)]


def spread(total: int, parts: int) -> list[int]:
    return [len(part) for part in split(list(range(total)), parts)]


# ---------------------------------------------------------------------- processes
@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    ppid: int
    state: str
    age: float  # s since it started
    cmdline: str

    @property
    def kind(self) -> str:
        if "spawn_main" in self.cmdline:
            return "worker"
        if "multiprocessing.forkserver" in self.cmdline:
            return "fork server"  # or a worker forked from it (`workers` tells them apart)
        if "resource_tracker" in self.cmdline:
            return "resource tracker"
        return "process"


def _uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


def process_info(pid: int, uptime: float | None = None) -> ProcessInfo | None:
    """What /proc says about a process, or None once it has gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    started = int(fields[19]) / os.sysconf("SC_CLK_TCK")
    age = (uptime if uptime is not None else _uptime()) - started
    command = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
    return ProcessInfo(pid, int(fields[1]), fields[0], age, command)


def marked_processes(marker: bytes) -> dict[int, ProcessInfo]:
    """Live (not zombie) processes whose environment holds `marker`: everything a server of
    this run started, however it was reparented."""
    found = {}
    uptime = _uptime()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            info = process_info(int(entry), uptime)
            if info is not None and info.state != "Z":
                found[info.pid] = info
    return found


def outside_tree(processes: dict[int, ProcessInfo], root: int | None) -> list[ProcessInfo]:
    """The processes that are neither `root` nor below it."""
    outside = []
    for info in processes.values():
        pid, seen = info.pid, set()
        while pid in processes and pid != root and pid not in seen:
            seen.add(pid)
            pid = processes[pid].ppid
        if pid != root:
            outside.append(info)
    return outside


def children(pid: int) -> list[int]:
    pids: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            pids += [int(child) for child in (task / "children").read_text().split()]
    except OSError:
        pass
    return pids


class Server:
    """`psgd-playground serve` in its own process group, its output in a log file."""

    def __init__(self, env: dict[str, str], url: str, log: Path) -> None:
        self.url, self.log = url, log
        script = Path(sys.executable).with_name("psgd-playground")
        command = [str(script)] if script.exists() else [sys.executable, "-m", "playground.cli"]
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                [*command, "serve"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: cleanup reaches orphans too
            )
        self.pid = self.process.pid

    def wait_healthy(self, client: httpx.Client, deadline: float) -> float:
        """Seconds until /api/health answered 200."""
        began = time.monotonic()
        while True:
            if self.process.poll() is not None:
                raise HarnessError(f"server exited with {self.process.returncode}: {self.tail()}")
            try:
                if client.get(f"{self.url}/api/health", timeout=5).status_code == 200:
                    return time.monotonic() - began
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise HarnessError(f"server did not answer /api/health: {self.tail()}")
            time.sleep(0.1)

    def workers(self) -> list[ProcessInfo]:
        """Spawned workers are the server's children; forked ones its fork server's."""
        found = []
        for info in filter(None, map(process_info, children(self.pid))):
            if info.kind == "worker":
                found.append(info)
            elif info.kind == "fork server":
                found += filter(None, map(process_info, children(info.pid)))
        return found

    def tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(port: int, data_dir: Path, concurrency: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PSGD_PLAYGROUND_")}
    env.update(
        PSGD_PLAYGROUND_HOST="127.0.0.1",
        PSGD_PLAYGROUND_PORT=str(port),
        PSGD_PLAYGROUND_DATA_DIR=str(data_dir),
        PSGD_PLAYGROUND_CONCURRENCY=str(concurrency),
        PSGD_PLAYGROUND_HEARTBEAT_SECONDS="1",
        # no thinning: a thinned job's stored events would no longer match what clients got
        PSGD_PLAYGROUND_MAX_METRIC_POINTS="1000000",
        PYTHONUNBUFFERED="1",
    )
    return env


# ---------------------------------------------------------------------- HTTP
class Api:
    """The main thread's client; every 5xx answer is a violation."""

    def __init__(self, url: str, findings: Findings) -> None:
        self.http = httpx.Client(base_url=url, timeout=30)
        self.findings = findings

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 500:
            self.findings.violation(
                "http", f"{method} {path}: {response.status_code} {response.text[:200]}"
            )
        return response

    def count(self, status: str) -> int:
        response = self.request("GET", "/api/jobs", params={"status": status, "limit": 1})
        return int(response.json()["total"])

    def job_ids(self) -> list[str]:
        ids: list[str] = []
        while True:
            page = self.request(
                "GET", "/api/jobs", params={"offset": len(ids), "limit": 500}
            ).json()
            ids += [item["id"] for item in page["items"]]
            if not page["items"] or len(ids) >= page["total"]:
                return ids

    def job(self, job_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/jobs/{job_id}").json()

    def events(self, job_id: str) -> list[dict[str, Any]]:
        """A job's stored events: the replay of its ended stream."""
        with self.http.stream("GET", f"/api/jobs/{job_id}/events") as response:
            return list(sse_rows(response))


def sse_rows(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """The `data` of each event of a stream, checked against its `id:` and `event:` lines."""
    if response.status_code != 200:
        raise HarnessError(f"{response.request.url}: {response.status_code}")
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if not line:
            if "data" in fields:
                row = json.loads(fields["data"])
                if str(row["id"]) != fields.get("id") or row["event"].get("type") != fields.get(
                    "event"
                ):
                    raise ValueError(f"event lines disagree with its data: {fields}")
                yield row
            fields = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(":")
            fields[key] = value.removeprefix(" ")


# ---------------------------------------------------------------------- SSE clients
FOLLOWER_MODES = ("to-end", "hang-up", "resume")


@dataclass
class Follower:
    """One SSE client of a job's or comparison's stream."""

    name: str
    mode: str  # to-end | hang-up (for good, after `hang_up_after` events) | resume (after them)
    path: str
    job_ids: list[str]
    hang_up_after: int
    received: list[int] = field(default_factory=list)  # ids over all connections, in order
    connections: int = 0
    dropped: int = 0  # connections that failed (server killed or restarting)
    hung_up: bool = False  # it has hung up as planned (once)
    ended: bool = False  # the server closed the stream, or it hung up for good as planned
    error: str | None = None

    def run(self, url: str, deadline: float) -> None:
        with httpx.Client(base_url=url, timeout=httpx.Timeout(15.0, connect=2.0)) as client:
            while not self.ended and self.connections < MAX_CONNECTIONS:
                if time.monotonic() > deadline:
                    return
                try:
                    self._connect(client)
                except httpx.TransportError:  # the server was killed or is restarting
                    self.dropped += 1
                    time.sleep(0.5)
                except Exception as error:  # recorded: the check reports it as a violation
                    self.error = f"{type(error).__name__}: {error}"
                    return

    def _connect(self, client: httpx.Client) -> None:
        """One connection: read until the server ends the stream or it is time to hang up."""
        self.connections += 1
        last = self.received[-1] if self.received else None
        planned_resume = self.hung_up and self.dropped == 0  # sends the id as a parameter
        params = {"last_event_id": last} if planned_resume else {}
        headers = {"Last-Event-ID": str(last)} if last is not None and not planned_resume else {}
        with client.stream("GET", self.path, params=params, headers=headers) as response:
            if response.status_code != 200:
                raise HarnessError(f"answered {response.status_code}: {response.read()[:200]!r}")
            for count, row in enumerate(sse_rows(response), 1):
                self.received.append(row["id"])
                if not self.hung_up and self.mode != "to-end" and count == self.hang_up_after:
                    self.hung_up = True
                    self.ended = self.mode == "hang-up"
                    return
        self.ended = True


def start_followers(
    count: int,
    offset: int,
    pools: tuple[list[Submission], list[Submission]],
    url: str,
    deadline: float,
    rng: random.Random,
) -> list[tuple[Follower, threading.Thread]]:
    """`count` clients, three in four on this wave's items (live), the others on any."""
    started = []
    for i in range(offset, offset + count):
        item = rng.choice(pools[0] if rng.random() < 0.75 else pools[1])
        follower = Follower(
            name=f"client-{i}",
            mode=FOLLOWER_MODES[i % len(FOLLOWER_MODES)],
            path=item.events_path,
            job_ids=item.job_ids,
            hang_up_after=rng.randint(1, 8),
        )
        thread = threading.Thread(target=follower.run, args=(url, deadline), daemon=True)
        thread.start()
        started.append((follower, thread))
    return started


# ---------------------------------------------------------------------- checks
def final_status_problems(job: dict[str, Any], events: list[dict[str, Any]]) -> list[str]:
    """What is wrong with an ended job's event list, as one line each."""
    kinds = [row["event"].get("type") for row in events]
    finals = [row["event"] for row in events if row["event"].get("type") == "status"]
    problems = []
    if len(finals) != 1:
        problems.append(f"{len(finals)} final status events (job status {job['status']})")
    elif kinds[-1] != "status":
        problems.append(f"events after its final status: {kinds[kinds.index('status') + 1 :]}")
    elif finals[0].get("status") not in ENDED:
        problems.append(f"final status event says {finals[0].get('status')!r}")
    elif finals[0].get("status") != job["status"]:
        problems.append(f"job status {job['status']} but final event says {finals[0]['status']}")
    if kinds.count("started") > 1:
        problems.append(f"{kinds.count('started')} started events (it ran more than once)")
    return problems


def stream_problems(received: list[int], stored: list[int], complete: bool) -> list[str]:
    """How a client's ids differ from the stored events of its jobs (all of them when the
    stream was read to its end, else the first ones)."""
    problems = []
    counts = Counter(received)
    duplicates = sorted(event_id for event_id, n in counts.items() if n > 1)
    if duplicates:
        problems.append(f"duplicate ids {_few(duplicates)}")
    backwards = [b for a, b in itertools.pairwise(received) if b <= a]
    if backwards and not duplicates:
        problems.append(f"ids out of order at {_few(backwards)}")
    expected = stored if complete else stored[: len(counts)]
    missing = sorted(set(expected) - counts.keys())
    if missing:
        problems.append(f"gap: {len(missing)} stored ids never received, {_few(missing)}")
    unknown = sorted(counts.keys() - set(stored))
    if unknown:
        problems.append(f"{len(unknown)} received ids not stored for its jobs, {_few(unknown)}")
    return problems


def snapshot_problems(
    before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]
) -> list[tuple[str, str]]:
    """(check, detail) for each job recorded before a kill that is gone or differs now."""
    problems = []
    for job_id, old in before.items():
        new = after.get(job_id)
        if new is None:
            problems.append(("lost", f"job {job_id} ({old['record']['status']}) is gone"))
            continue
        fields = sorted(
            k
            for k in old["record"].keys() | new["record"].keys()
            if old["record"].get(k) != new["record"].get(k)
        )
        if fields:
            problems.append(("changed", f"job {job_id}: record fields {fields} changed"))
        if old["events"] != new["events"]:
            ids = [row["id"] for row in old["events"]], [row["id"] for row in new["events"]]
            problems.append(
                ("changed", f"job {job_id}: events changed, ids {_few(ids[0])} → {_few(ids[1])}")
            )
    return problems


def _few(values: list[Any], shown: int = 6) -> str:
    text = ", ".join(str(v) for v in values[:shown])
    return f"[{text}{', …' if len(values) > shown else ''}]"


# ---------------------------------------------------------------------- the run
class Soak:
    """One run: owns the data folder, the servers and the clients, and cleans them all up."""

    def __init__(self, plan: Plan, out: Path) -> None:
        self.plan, self.out = plan, out
        self.rng = random.Random(plan.seed)
        self.findings = Findings()
        self.data_dir = Path(tempfile.mkdtemp(prefix="psgd-soak-"))
        self.marker = f"PSGD_PLAYGROUND_DATA_DIR={self.data_dir}".encode()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = server_env(self.port, self.data_dir, plan.concurrency)
        self.servers: list[Server] = []
        self.followers: list[tuple[Follower, threading.Thread]] = []
        self.submitted: list[Submission] = []
        self.snapshot: dict[str, dict[str, Any]] = {}
        self.kills: list[dict[str, Any]] = []
        self.began = time.monotonic()
        self.deadline = self.began + plan.timeout - 30  # leaves time to check and clean up
        self.api = Api(self.url, self.findings)

    @property
    def server(self) -> Server:
        return self.servers[-1]

    def start_server(self) -> Server:
        server = Server(self.env, self.url, self.out / f"server-{len(self.servers) + 1}.log")
        self.servers.append(server)
        return server

    def run(self) -> dict[str, Any]:
        self.start_server().wait_healthy(self.api.http, self.deadline)
        extra = self.plan.server_kills + self.plan.worker_kills
        items = workload(self.plan.jobs - extra, self.rng)
        waves = split(items, self.plan.server_kills + 1)
        long_jobs = [Submission("job", dict(INTERRUPTED), 1) for _ in waves[1:]]
        for wave, job in zip(waves, long_jobs):
            wave.insert(len(wave) // 2, job)
        worker_kills = spread(self.plan.worker_kills, len(waves))
        for wave, kills in zip(waves, worker_kills):
            wave[:0] = [Submission("job", dict(KILLED), 1) for _ in range(kills)]
        clients = spread(self.plan.clients, len(waves))
        for number, wave in enumerate(waves):
            self.submit(wave)
            offset = len(self.followers)
            self.followers += start_followers(
                clients[number], offset, (wave, self.submitted), self.url, self.deadline, self.rng
            )
            for _ in range(worker_kills[number]):
                self.kill_worker()
            self.cancel_some([item for item in wave if item not in long_jobs])
            if number < len(long_jobs):
                self.kill_and_restart_server(long_jobs[number])
        settled = self.settle()
        for _, thread in self.followers:
            thread.join(max(0.0, min(self.deadline, time.monotonic() + 30) - time.monotonic()))
        final = self.collect()
        self.check(final, settled)
        self.stop_server()
        return self.report(final)

    # --- load
    def submit(self, wave: list[Submission]) -> None:
        for item in wave:
            path = "/api/jobs" if item.kind == "job" else "/api/comparisons"
            while True:
                response = self.api.request("POST", path, json=item.body)
                if response.status_code != 429:
                    break
                self.findings.count("answers 429")
                if time.monotonic() > self.deadline:
                    raise HarnessError(f"submissions refused until the deadline: {response.text}")
                time.sleep(min(10.0, float(response.headers.get("Retry-After", 0.5))))
            if response.status_code != 201:
                self.findings.violation(
                    "http", f"POST {path} {item.body}: {response.status_code} {response.text[:200]}"
                )
                continue
            data = response.json()
            item.id = data["id"]
            item.job_ids = [data["id"]] if item.kind == "job" else data["job_ids"]
            self.submitted.append(item)

    def cancel_some(self, wave: list[Submission]) -> None:
        job_ids = [job_id for item in wave for job_id in item.job_ids]
        for job_id in self.rng.sample(job_ids, len(job_ids) // 8):
            response = self.api.request("POST", f"/api/jobs/{job_id}/cancel")
            self.findings.count(f"cancel answers {response.status_code}")

    # --- faults
    def kill_worker(self) -> None:
        """kill -9 a running job's worker (waits a little for one). Only a worker the store
        records for a running job: the warm pool's idle workers hold no job."""
        until = min(self.deadline, time.monotonic() + 30)
        while time.monotonic() < until:
            busy = self.busy_worker_pids()
            workers = [w for w in self.server.workers() if w.age > 1.0 and w.pid in busy]
            if workers:
                os.kill(self.rng.choice(workers).pid, signal.SIGKILL)
                self.findings.count("worker kills")
                return
            time.sleep(0.05)
        self.findings.note("a worker kill was skipped: no worker ran for 30 s")

    def busy_worker_pids(self) -> set[int]:
        """The worker pids the job store records for running jobs (read-only)."""
        uri = f"file:{self.data_dir / DB_NAME}?mode=ro"
        try:
            with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5)) as db:
                rows = db.execute(
                    "SELECT worker_pid FROM jobs WHERE status = 'running'"
                    " AND worker_pid IS NOT NULL"
                ).fetchall()
        except sqlite3.Error:
            return set()
        return {pid for (pid,) in rows}

    def wait_until_running(self, job_id: str) -> bool:
        until = min(self.deadline, time.monotonic() + 120)
        while time.monotonic() < until:
            status = self.api.job(job_id)["status"]
            if status != "queued":
                return status == "running"
            time.sleep(0.1)
        return False

    def wait_for_fresh_worker(self) -> float | None:
        """The age of a worker that has just started, once there is one (≤ 20 s)."""
        until = min(self.deadline, time.monotonic() + 20)
        while time.monotonic() < until:
            ages = [w.age for w in self.server.workers() if w.age < FRESH_WORKER_AGE]
            if ages:
                return min(ages)
            time.sleep(0.02)
        return None

    def kill_and_restart_server(self, long_job: Submission) -> None:
        """Once `long_job` runs: record the ended jobs, then kill -9 the server when a worker
        has just started (it sends nothing while it imports, so only dying with its server
        ends it) and restart it at once on the same folder."""
        if not self.wait_until_running(str(long_job.id)):
            self.findings.note(f"job {long_job.id} was not running at the server kill")
        self.record_ended()
        old = self.server
        fresh_age = self.wait_for_fresh_worker()
        if fresh_age is None:
            self.findings.note("no worker had just started at the server kill")
        workers = len(old.workers())
        old.process.send_signal(signal.SIGKILL)
        old.process.wait(10)
        killed_at = time.monotonic()
        new = self.start_server()  # at once: the old workers may still be alive
        while True:
            left = outside_tree(marked_processes(self.marker), new.pid)
            waited = time.monotonic() - killed_at
            if not left or waited >= self.plan.orphan_grace:
                break
            time.sleep(0.05)
        for info in left:
            self.findings.violation(
                "orphans",
                f"{info.kind} {info.pid} of the killed server (parent now {info.ppid}) alive "
                f"{waited:.1f} s after the kill: {info.cmdline[:80]}",
            )
        restart = new.wait_healthy(self.api.http, self.deadline)
        self.findings.count("server kills")
        self.kills.append(
            {
                "workers_alive": workers,
                "youngest_worker_age_s": None if fresh_age is None else round(fresh_age, 3),
                "left_after_grace": len(left),
                "restart_s": round(restart, 2),
            }
        )

    # --- settling and checking
    def record_ended(self) -> None:
        """Each ended job's record and events, to compare with the end of the run."""
        for job_id in self.api.job_ids():
            if job_id in self.snapshot:
                continue
            record = self.api.job(job_id)
            if record["status"] in ENDED:
                self.snapshot[job_id] = {"record": record, "events": self.api.events(job_id)}

    def settle(self) -> bool:
        """Wait for every job to end; False if some had not by the deadline."""
        while time.monotonic() < self.deadline:
            if self.api.count("queued") == 0 and self.api.count("running") == 0:
                return True
            time.sleep(0.25)
        return False

    def collect(self) -> dict[str, dict[str, Any]]:
        final = {}
        for job_id in self.api.job_ids():
            record = self.api.job(job_id)
            if record["status"] in ACTIVE:  # its stream would follow it live
                final[job_id] = {"record": record, "events": []}
            else:
                final[job_id] = {"record": record, "events": self.api.events(job_id)}
        return final

    def check(self, final: dict[str, dict[str, Any]], settled: bool) -> None:
        violation = self.findings.violation
        submitted = {job_id for item in self.submitted for job_id in item.job_ids}
        for job_id in sorted(submitted - final.keys()):
            violation("lost", f"submitted job {job_id} is not listed")
        for job_id in sorted(final.keys() - submitted):
            violation("lost", f"listed job {job_id} was never submitted")
        for check, detail in snapshot_problems(self.snapshot, final):
            violation(check, detail)
        for job_id, job in final.items():
            if job["record"]["status"] in ACTIVE:
                violation(
                    "unsettled",
                    f"job {job_id} still {job['record']['status']} (settled: {settled})",
                )
                continue
            for problem in final_status_problems(job["record"], job["events"]):
                violation("final status", f"job {job_id}: {problem}")
        for follower, thread in self.followers:
            where = f"{follower.name} ({follower.mode}, {follower.path})"
            if follower.error:
                violation("sse", f"{where}: {follower.error}")
            if thread.is_alive() or not follower.ended:
                violation(
                    "sse", f"{where}: its stream did not end ({follower.connections} connections)"
                )
            stored = sorted(
                row["id"]
                for job_id in follower.job_ids
                for row in final.get(job_id, {}).get("events", [])
            )
            complete = follower.mode != "hang-up"
            for problem in stream_problems(follower.received, stored, complete):
                violation("sse", f"{where}: {problem}")

    def stop_server(self) -> None:
        """Ctrl-C, as a user would; then nothing of this run may be left."""
        server = self.server
        server.process.send_signal(signal.SIGINT)
        try:
            server.process.wait(30)
        except subprocess.TimeoutExpired:
            self.findings.violation("leftovers", "the server ignored Ctrl-C for 30 s")
            return
        until = time.monotonic() + 10
        while (left := list(marked_processes(self.marker).values())) and time.monotonic() < until:
            time.sleep(0.1)
        for info in left:
            self.findings.violation(
                "leftovers",
                f"{info.kind} {info.pid} alive after the final Ctrl-C: {info.cmdline[:80]}",
            )

    def cleanup(self, keep_data: bool) -> None:
        """Kill whatever this run started, even mid-run; runs on every way out."""
        for server in self.servers:
            server.kill_group()
        for info in marked_processes(self.marker).values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(info.pid, signal.SIGKILL)
        self.api.http.close()
        if keep_data:
            print(f"data folder kept: {self.data_dir}")
        else:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    # --- report
    def report(self, final: dict[str, dict[str, Any]]) -> dict[str, Any]:
        statuses = Counter(job["record"]["status"] for job in final.values())
        kinds = Counter(row["event"]["type"] for job in final.values() for row in job["events"])
        followers = [follower for follower, _ in self.followers]
        log_spam = sum(
            server.log.read_text(errors="replace").count("socket.send() raised exception")
            for server in self.servers
        )
        violations = self.findings.violations
        return {
            "plan": asdict(self.plan),
            "seconds": round(time.monotonic() - self.began, 1),
            "jobs": {
                "submitted": sum(item.size for item in self.submitted),
                "comparisons": sum(item.kind == "comparison" for item in self.submitted),
                "listed": len(final),
                "by_status": dict(sorted(statuses.items())),
                "recorded_before_kills": len(self.snapshot),
            },
            "events": {"stored": sum(kinds.values()), "by_type": dict(sorted(kinds.items()))},
            "sse": {
                "clients": len(followers),
                "by_mode": dict(Counter(f.mode for f in followers)),
                "ended": sum(f.ended for f in followers),
                "connections": sum(f.connections for f in followers),
                "dropped_connections": sum(f.dropped for f in followers),
                "events_received": sum(len(f.received) for f in followers),
            },
            "faults": {"server_kills": self.kills, "counts": dict(self.findings.counts)},
            "server_log_send_errors": log_spam,
            "notes": self.findings.notes,
            "violations": {
                "total": len(violations),
                "by_check": dict(Counter(v["check"] for v in violations)),
                "list": violations,
            },
        }


def table(report: dict[str, Any]) -> str:
    jobs, sse, violations = report["jobs"], report["sse"], report["violations"]
    rows = [
        ("mode", f"{report['plan']['mode']} ({report['seconds']} s)"),
        ("jobs submitted", f"{jobs['submitted']} ({jobs['comparisons']} comparisons)"),
        *((f"  {status}", str(n)) for status, n in jobs["by_status"].items()),
        ("jobs recorded before kills", str(jobs["recorded_before_kills"])),
        ("events stored", str(report["events"]["stored"])),
        ("SSE clients", f"{sse['clients']} {sse['by_mode']}, {sse['ended']} ended"),
        ("SSE connections", f"{sse['connections']} ({sse['dropped_connections']} dropped)"),
        ("SSE events received", str(sse["events_received"])),
        *((name, str(n)) for name, n in sorted(report["faults"]["counts"].items())),
        *(
            (f"server kill {i + 1}", json.dumps(kill))
            for i, kill in enumerate(report["faults"]["server_kills"])
        ),
        ("log lines 'socket.send() raised'", str(report["server_log_send_errors"])),
        ("violations", f"{violations['total']} {violations['by_check'] or ''}".strip()),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    lines += [f"  {v['check']}: {v['detail']}" for v in violations["list"][:SHOWN_DETAILS]]
    if violations["total"] > SHOWN_DETAILS:
        lines.append(f"  … and {violations['total'] - SHOWN_DETAILS} more in report.json")
    lines += [f"note: {note}" for note in report["notes"]]
    return "\n".join(lines)


# ---------------------------------------------------------------------- command line
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the CI smoke run (≈ 1 min)")
    parser.add_argument("--jobs", type=_at_least(4), help="jobs in all")
    parser.add_argument("--clients", type=_at_least(0), help="SSE clients")
    parser.add_argument("--server-kills", type=_at_least(0), help="kill -9 and restarts")
    parser.add_argument("--worker-kills", type=_at_least(0), help="kill -9 of workers")
    parser.add_argument("--concurrency", type=_at_least(1), default=2, help="jobs run at once")
    parser.add_argument("--timeout", type=_at_least(60), help="hard limit of the run, s")
    parser.add_argument(
        "--orphan-grace", type=float, default=1.5, help="s a killed server's workers may live"
    )
    parser.add_argument("--seed", type=int, default=0, help="of the workload and the choices")
    parser.add_argument(
        "--out",
        type=Path,
        help=f"results folder (default {RESULTS.relative_to(ROOT)}/<time>-<mode>)",
    )
    parser.add_argument("--keep-data", action="store_true", help="keep the server's data folder")
    args = parser.parse_args(argv)
    if not 0 < args.orphan_grace <= 30:
        parser.error(f"--orphan-grace: must be in (0, 30] s, got {args.orphan_grace}")
    return args


def _at_least(minimum: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def make_plan(args: argparse.Namespace) -> Plan:
    mode = "quick" if args.quick else "full"
    numbers = {**MODES[mode]}
    for name in numbers:
        if getattr(args, name) is not None:
            numbers[name] = getattr(args, name)
    return Plan(
        mode=mode,
        concurrency=args.concurrency,
        orphan_grace=args.orphan_grace,
        seed=args.seed,
        **numbers,
    )


def _on_alarm(signum: int, frame: Any) -> None:
    raise HardTimeout("the run's hard timeout was reached")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = make_plan(args)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    out = args.out or RESULTS / f"{stamp}-{plan.mode}"
    out.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGALRM, _on_alarm)
    # Ctrl-C (even where a shell started it ignoring SIGINT) and a plain kill clean up too
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.alarm(int(plan.timeout))
    soak = Soak(plan, out)
    try:
        report = soak.run()
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
        return 130
    except (HarnessError, httpx.HTTPError, OSError) as error:
        print(f"soak: the run failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    finally:
        signal.alarm(0)
        soak.cleanup(args.keep_data)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))
    print(f"report and server logs: {out}")
    return 1 if report["violations"]["total"] else 0


if __name__ == "__main__":
    sys.exit(main())
