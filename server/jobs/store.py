"""SQLite job store: comparisons, jobs and their events, durable across server restarts.

One connection shared by every thread (the executor's callback threads and the asyncio
loop), serialised by a lock: SQLite allows one writer anyway, and a single connection
keeps event ids and job rows consistent without cross-connection locking. WAL mode lets
a second process (a CLI, a test) read while the server writes.

Event ids come from an AUTOINCREMENT key, so they are global, strictly increasing and
never reused even after deletes: SSE clients resume with `Last-Event-ID` against them.
Metrics events are thinned as a job runs so a long job keeps a bounded number of rows.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
import uuid
from collections.abc import Collection
from pathlib import Path
from typing import Any

from server.events import ACTIVE_STATUSES, ENDED_STATUSES, STATUSES, Status

MIGRATIONS: tuple[str, ...] = (
    # Version 1: the initial schema.
    """
    CREATE TABLE comparisons (
        id TEXT PRIMARY KEY,
        spec JSON NOT NULL,
        created REAL NOT NULL
    );
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        comparison_id TEXT NULL,
        label TEXT NOT NULL DEFAULT '',
        spec JSON NOT NULL,
        status TEXT NOT NULL,
        message TEXT NOT NULL DEFAULT '',
        summary JSON NOT NULL DEFAULT '{}',
        created REAL NOT NULL,
        started REAL NULL,
        finished REAL NULL
    );
    CREATE INDEX jobs_by_comparison ON jobs (comparison_id);
    CREATE INDEX jobs_by_created ON jobs (created);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id TEXT NOT NULL,
        type TEXT NOT NULL,
        step INTEGER,
        payload JSON NOT NULL
    );
    CREATE INDEX events_by_job ON events (job_id, id);
    """,
    # Version 2: the worker running a job (pid and process start time), so that a restarted
    # server can kill a worker its predecessor left behind before rerunning the job.
    """
    ALTER TABLE jobs ADD COLUMN worker_pid INTEGER NULL;
    ALTER TABLE jobs ADD COLUMN worker_started INTEGER NULL;
    """,
    # Version 3: a job's optimizer label ("adam#2": the second "adam" of its comparison), so
    # that no reader rebuilds it from the job's position (NULL before: the optimizer's name).
    """
    ALTER TABLE jobs ADD COLUMN optimizer_label TEXT NULL;
    """,
)
"""Ordered schema scripts; script i brings `PRAGMA user_version` from i to i + 1.
Append new scripts, never edit old ones: existing databases have already run them."""

_NO_WORKER = "worker_pid = NULL, worker_started = NULL"
_UNSTOPPABLE = (
    "the server stopped while the job was running, and its worker could not be stopped, "
    "so it was not run again"
)
#: a job's identity: optimizer name, optimizer label, seed
_JOB_IDENTITY = (
    " json_extract(spec, '$.optimizer.name'),"
    " COALESCE(optimizer_label, json_extract(spec, '$.optimizer.name')),"
    " json_extract(spec, '$.seed')"
)
_JOB_COLUMNS = (
    "id, comparison_id, label, spec, status, message, summary, created, started, finished,"
    + _JOB_IDENTITY
)
#: a job in a list: its row without the spec, and the spec's few identifying fields
_JOB_BRIEF_COLUMNS = (
    "id, comparison_id, label, status, message, summary, created, started, finished,"
    + _JOB_IDENTITY
    + ", json_extract(spec, '$.task.name'), json_extract(spec, '$.steps'),"
    " json_extract(spec, '$.epochs')"
)
_COMPARISON_BRIEF_COLUMNS = (
    "id, created, json_extract(spec, '$.task.name'),"
    " (SELECT json_group_array(json_extract(value, '$.name'))"
    "  FROM json_each(comparisons.spec, '$.optimizers')),"
    " json_extract(spec, '$.seeds'), json_extract(spec, '$.steps'), json_extract(spec, '$.epochs')"
)


def new_id() -> str:
    """A short random id: unguessable enough for URLs, short enough to read in logs."""
    return uuid.uuid4().hex[:12]


class JobStore:
    """Persistent store of comparisons, jobs and events; every method is thread-safe."""

    def __init__(self, path: Path | str, max_metric_points: int = 2000) -> None:
        if max_metric_points < 1:
            raise ValueError(f"max_metric_points must be >= 1, got {max_metric_points}")
        self.path = Path(path)
        self.max_metric_points = max_metric_points
        self._lock = threading.Lock()
        # job id -> number of stored metrics rows; also proves the job exists, which
        # saves a lookup per appended event.
        self._metric_counts: dict[str, int] = {}
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = NORMAL")  # durable enough in WAL, much faster
        self._migrate()

    # ---- schema ---------------------------------------------------------------------------

    def _migrate(self) -> None:
        """Apply the migrations this database has not seen yet, each in its own transaction."""
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise RuntimeError(
                f"job store {self.path} has schema version {version}, newer than this "
                f"server understands ({len(MIGRATIONS)}); upgrade the server"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            try:
                self._conn.executescript(
                    f"BEGIN; {script.strip().rstrip(';')}; PRAGMA user_version = {number}; COMMIT;"
                )
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    @property
    def schema_version(self) -> int:
        """The database's `PRAGMA user_version`, i.e. how many migrations it has run."""
        with self._lock:
            return self._conn.execute("PRAGMA user_version").fetchone()[0]

    # ---- comparisons and jobs -------------------------------------------------------------

    def create_comparison(self, spec: dict[str, Any]) -> str:
        """Store a comparison spec; its jobs are created separately with its id."""
        cid = new_id()
        with self._lock, self._transaction():
            self._conn.execute(
                "INSERT INTO comparisons (id, spec, created) VALUES (?, ?, ?)",
                (cid, _dumps(spec), time.time()),
            )
        return cid

    def create_job(
        self,
        spec: dict[str, Any],
        comparison_id: str | None = None,
        label: str = "",
        optimizer_label: str | None = None,
    ) -> str:
        """Store a queued job; raises KeyError for an unknown comparison id.
        `optimizer_label` defaults to the spec's optimizer name."""
        job_id = new_id()
        with self._lock, self._transaction():
            if comparison_id is not None and not self._exists("comparisons", comparison_id):
                raise KeyError(f"unknown comparison {comparison_id!r}")
            self._conn.execute(
                "INSERT INTO jobs (id, comparison_id, label, spec, status, created,"
                " optimizer_label) VALUES (?, ?, ?, ?, 'queued', ?, ?)",
                (job_id, comparison_id, label, _dumps(spec), time.time(), optimizer_label),
            )
            self._metric_counts[job_id] = 0
        return job_id

    def set_status(
        self, job_id: str, status: str, message: str = "", summary: dict[str, Any] | None = None
    ) -> None:
        """Record a status change and its timestamps; summary None keeps the stored one.

        running sets `started`; a final status or interrupted sets `finished`; queued
        clears both, since a requeued job starts over. Both forget the job's worker.
        """
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}; expected one of {STATUSES}")
        now = time.time()
        sets = ["status = ?", "message = ?"]
        params: list[Any] = [status, message]
        if status == "running":
            sets += ["started = ?", "finished = NULL"]
            params.append(now)
        elif status in ENDED_STATUSES:
            sets += ["finished = ?", _NO_WORKER]
            params.append(now)
        else:  # queued
            sets += ["started = NULL", "finished = NULL", _NO_WORKER]
        if summary is not None:
            sets.append("summary = ?")
            params.append(_dumps(summary))
        with self._lock, self._transaction():
            cursor = self._conn.execute(
                f"UPDATE jobs SET {', '.join(sets)} WHERE id = ?", (*params, job_id)
            )
            if cursor.rowcount == 0:
                raise KeyError(f"unknown job {job_id!r}")

    def mark_running(
        self, job_id: str, worker_pid: int | None = None, worker_started: int | None = None
    ) -> bool:
        """A queued job was taken by a worker (pid and start time, when known): it is
        running from now on. False when it is not queued (already running, or ended);
        KeyError for an unknown job."""
        with self._lock, self._transaction():
            cursor = self._conn.execute(
                "UPDATE jobs SET status = 'running', message = '', started = ?, finished = NULL,"
                " worker_pid = ?, worker_started = ? WHERE id = ? AND status = 'queued'",
                (time.time(), worker_pid, worker_started, job_id),
            )
            if cursor.rowcount == 0 and not self._exists("jobs", job_id):
                raise KeyError(f"unknown job {job_id!r}")
            return cursor.rowcount > 0

    def count_by_status(self) -> dict[str, int]:
        """How many jobs are in each status (every status listed), read at one instant."""
        with self._lock:
            rows = self._conn.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status")
            counts = dict(rows.fetchall())
        return {status: counts.get(status, 0) for status in STATUSES}

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        """The job as a plain dict, or None when there is no such job."""
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
        return _job_dict(row) if row else None

    def list_jobs(
        self,
        offset: int = 0,
        limit: int = 50,
        status: str | None = None,
        comparison_id: str | None = None,
        brief: bool = False,
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of jobs, newest first, and the total count matching the filters.

        `brief`: without the spec, whose size the client chose, but with its task name,
        optimizer name, seed, steps and epochs (read inside SQLite)."""
        where, params = _job_filters(status, comparison_id)
        columns, as_dict = (_JOB_BRIEF_COLUMNS, _job_brief) if brief else (_JOB_COLUMNS, _job_dict)
        with self._lock:
            total = self._conn.execute(f"SELECT COUNT(*) FROM jobs{where}", params).fetchone()[0]
            rows = self._conn.execute(
                f"SELECT {columns} FROM jobs{where}"
                " ORDER BY created DESC, rowid DESC LIMIT ? OFFSET ?",
                (*params, max(0, limit), max(0, offset)),
            ).fetchall()
        return [as_dict(row) for row in rows], total

    def get_comparison(self, cid: str) -> dict[str, Any] | None:
        """The comparison with its job ids and aggregate status, or None if unknown."""
        with self._lock:
            row = self._conn.execute(
                "SELECT id, spec, created FROM comparisons WHERE id = ?", (cid,)
            ).fetchone()
            return self._comparison_dict(row) if row else None

    def list_comparisons(
        self, offset: int = 0, limit: int = 50, brief: bool = False
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of comparisons, newest first, and the total count.

        `brief`: without the spec, but with its task name, optimizer names, seeds, steps
        and epochs (read inside SQLite)."""
        columns = _COMPARISON_BRIEF_COLUMNS if brief else "id, spec, created"
        as_dict = self._comparison_brief if brief else self._comparison_dict
        with self._lock:
            total = self._conn.execute("SELECT COUNT(*) FROM comparisons").fetchone()[0]
            rows = self._conn.execute(
                f"SELECT {columns} FROM comparisons"
                " ORDER BY created DESC, rowid DESC LIMIT ? OFFSET ?",
                (max(0, limit), max(0, offset)),
            ).fetchall()
            return [as_dict(row) for row in rows], total

    def size_bytes(self) -> int:
        """Bytes the database's pages hold (free pages left by deletes not counted)."""
        with self._lock:
            pages, free, size = (
                self._conn.execute(f"PRAGMA {name}").fetchone()[0]
                for name in ("page_count", "freelist_count", "page_size")
            )
        return (pages - free) * size

    def delete_job(self, job_id: str) -> bool:
        """Delete a job and its events; False when there was no such job."""
        with self._lock, self._transaction():
            return self._delete_jobs([job_id]) > 0

    def delete_comparison(self, cid: str) -> bool:
        """Delete a comparison with all its jobs and their events; False if unknown."""
        with self._lock, self._transaction():
            job_ids = [
                row[0]
                for row in self._conn.execute("SELECT id FROM jobs WHERE comparison_id = ?", (cid,))
            ]
            self._delete_jobs(job_ids)
            cursor = self._conn.execute("DELETE FROM comparisons WHERE id = ?", (cid,))
            return cursor.rowcount > 0

    def leftover_workers(self) -> list[tuple[str, int, int | None]]:
        """(job id, worker pid, worker start time) of the running jobs with a recorded
        worker: at server start, the workers a previous process may have left behind."""
        with self._lock:
            return self._conn.execute(
                "SELECT id, worker_pid, worker_started FROM jobs"
                " WHERE status = 'running' AND worker_pid IS NOT NULL ORDER BY created, rowid"
            ).fetchall()

    def recover(self, requeue: bool, keep_interrupted: Collection[str] = ()) -> list[str]:
        """At server start, settle jobs a previous process left running; return their ids.

        Their worker is gone (it dies with its server; the service kills any left), so they
        become interrupted, each with a final `interrupted` status event, or with `requeue`
        queued again with their events dropped, except those in `keep_interrupted` (a
        worker that could not be stopped must not run beside a rerun). Queued jobs are left
        for the service to resubmit.
        """
        message = "the server stopped while the job was running"
        with self._lock, self._transaction():
            ids = [
                row[0]
                for row in self._conn.execute(
                    "SELECT id FROM jobs WHERE status = 'running' ORDER BY created, rowid"
                )
            ]
            requeued = [job_id for job_id in ids if requeue and job_id not in keep_interrupted]
            for job_id in ids:
                if job_id in requeued:
                    self._requeue(job_id)
                else:
                    self._interrupt(job_id, _UNSTOPPABLE if requeue else message)
        return ids

    def _requeue(self, job_id: str) -> None:
        """A rerun starts from scratch: its stream must not replay the old run."""
        self._conn.execute(
            "UPDATE jobs SET status = 'queued', message = '', started = NULL, finished = NULL,"
            f" {_NO_WORKER} WHERE id = ?",
            (job_id,),
        )
        self._conn.execute("DELETE FROM events WHERE job_id = ?", (job_id,))
        self._metric_counts.pop(job_id, None)

    def _interrupt(self, job_id: str, message: str) -> None:
        """Interrupted, with the one final status event every job ends with."""
        step = self._conn.execute(
            "SELECT MAX(step) FROM events WHERE job_id = ?", (job_id,)
        ).fetchone()[0]
        event = Status(step=step or 0, status="interrupted", message=message).model_dump()
        self._conn.execute(
            "INSERT INTO events (job_id, type, step, payload) VALUES (?, 'status', ?, ?)",
            (job_id, event["step"], _dumps(event)),
        )
        self._conn.execute(
            f"UPDATE jobs SET status = 'interrupted', message = ?, finished = ?, {_NO_WORKER}"
            " WHERE id = ?",
            (message, time.time(), job_id),
        )

    # ---- events ---------------------------------------------------------------------------

    def append_event(self, job_id: str, event: dict[str, Any]) -> int:
        """Store one event (a `model_dump()` dict) and return its global id; see
        `append_events`."""
        return self.append_events(job_id, [event])[0]

    def append_events(self, job_id: str, events: list[dict[str, Any]]) -> list[int]:
        """Store a job's events in order, in one transaction, and return their global ids.

        One commit per batch, not per event: a commit writes the touched pages to the WAL,
        which cost more than the rows (a landscape job sends an event per step). Metrics
        rows are thinned exactly as if they came one at a time. Raises KeyError for an
        unknown job (e.g. one deleted while its worker still reports), storing none of
        them, so events never outlive their job.
        """
        ids = []
        with self._lock, self._transaction():
            count = self._metric_count(job_id)
            for event in events:
                kind = event["type"]
                event_id = self._conn.execute(
                    "INSERT INTO events (job_id, type, step, payload) VALUES (?, ?, ?, ?)",
                    (job_id, kind, event.get("step"), _dumps(event)),
                ).lastrowid
                assert event_id is not None
                ids.append(event_id)
                if kind == "metrics":
                    count += 1
                    if count > 2 * self.max_metric_points:
                        count = self._thin_metrics(job_id)
            self._metric_counts[job_id] = count
        return ids

    def events(
        self, job_ids: list[str], after: int = 0, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Stored events of the given jobs with id > after, in id order.

        Each row is {"id", "job_id", "event"}; `after` is an SSE client's Last-Event-ID.
        """
        if not job_ids:
            return []
        marks = ", ".join("?" * len(job_ids))
        sql = f"SELECT id, job_id, payload FROM events WHERE job_id IN ({marks}) AND id > ?"
        params: list[Any] = [*job_ids, after]
        sql += " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(max(0, limit))
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        return [
            {"id": id_, "job_id": job, "event": json.loads(payload)} for id_, job, payload in rows
        ]

    # ---- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection; later calls fail. Safe to call twice."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- internals (callers hold the lock) ------------------------------------------------

    def _transaction(self) -> _Transaction:
        return _Transaction(self._conn)

    def _exists(self, table: str, id_: str) -> bool:
        return (
            self._conn.execute(f"SELECT 1 FROM {table} WHERE id = ?", (id_,)).fetchone() is not None
        )

    def _metric_count(self, job_id: str) -> int:
        """Cached count of the job's metrics rows; loads it (and checks the job) on a miss."""
        count = self._metric_counts.get(job_id)
        if count is None:
            if not self._exists("jobs", job_id):
                raise KeyError(f"unknown job {job_id!r}")
            count = self._conn.execute(
                "SELECT COUNT(*) FROM events WHERE job_id = ? AND type = 'metrics'", (job_id,)
            ).fetchone()[0]
            self._metric_counts[job_id] = count
        return count

    def _thin_metrics(self, job_id: str) -> int:
        """Delete metrics rows down to about max_metric_points; return how many remain."""
        rows = [
            (id_, step, json.loads(payload).get("loss"))
            for id_, step, payload in self._conn.execute(
                "SELECT id, step, payload FROM events"
                " WHERE job_id = ? AND type = 'metrics' ORDER BY id",
                (job_id,),
            )
        ]
        keep = _thinned(rows, self.max_metric_points)
        self._conn.executemany(
            "DELETE FROM events WHERE id = ?", [(row[0],) for row in rows if row[0] not in keep]
        )
        return len(keep)

    def _delete_jobs(self, job_ids: list[str]) -> int:
        for job_id in job_ids:
            self._metric_counts.pop(job_id, None)
        pairs = [(job_id,) for job_id in job_ids]
        self._conn.executemany("DELETE FROM events WHERE job_id = ?", pairs)
        before = self._conn.total_changes
        self._conn.executemany("DELETE FROM jobs WHERE id = ?", pairs)
        return self._conn.total_changes - before

    def _comparison_dict(self, row: tuple[Any, ...]) -> dict[str, Any]:
        cid, spec, created = row
        return {"id": cid, "spec": json.loads(spec), "created": created, **self._jobs_of(cid)}

    def _comparison_brief(self, row: tuple[Any, ...]) -> dict[str, Any]:
        cid, created, task, optimizers, seeds, steps, epochs = row
        return {
            "id": cid,
            "created": created,
            "task": task,
            "optimizers": json.loads(optimizers or "[]"),
            "seeds": json.loads(seeds or "[]"),
            "steps": steps,
            "epochs": epochs,
            **self._jobs_of(cid),
        }

    def _jobs_of(self, cid: str) -> dict[str, Any]:
        jobs = self._conn.execute(
            "SELECT id, status FROM jobs WHERE comparison_id = ? ORDER BY created, rowid", (cid,)
        ).fetchall()
        return {
            "job_ids": [job_id for job_id, _ in jobs],
            "status": _aggregate_status([status for _, status in jobs]),
        }


class _Transaction:
    """BEGIN … COMMIT around a block (ROLLBACK on error), for an autocommit connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._conn.execute("ROLLBACK" if exc_type else "COMMIT")


def _thinned(rows: list[tuple[int, int | None, Any]], target: int) -> set[int]:
    """Ids to keep among (id, step, loss) rows: about `target` spread evenly over steps,
    plus the first, the last and the minimum-loss row.

    Buckets by step rather than by position, so repeated thinning of a growing run keeps
    its early part as dense as its recent part instead of halving it every time.
    """
    first, last = rows[0], rows[-1]
    keep = {first[0], last[0]}
    losses = [(loss, id_) for id_, _, loss in rows if _finite(loss)]
    if losses:
        keep.add(min(losses)[1])
    positions = [step for _, step, _ in rows]
    if not all(isinstance(p, int) for p in positions) or positions[-1] <= positions[0]:
        positions = list(range(len(rows)))  # no usable steps: spread by position instead
    start, span = positions[0], max(1, positions[-1] - positions[0])
    seen: set[int] = set()
    for (id_, _, _), position in zip(rows, positions):
        bucket = min(target - 1, (position - start) * target // span)
        if bucket not in seen:
            seen.add(bucket)
            keep.add(id_)
    return keep


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _aggregate_status(statuses: list[str]) -> str:
    """running while any job is queued or running; then succeeded only if all succeeded."""
    if any(status in ACTIVE_STATUSES for status in statuses):
        return "running"
    if statuses and all(status == "succeeded" for status in statuses):
        return "succeeded"
    return "finished"


def _job_filters(status: str | None, comparison_id: str | None) -> tuple[str, tuple[Any, ...]]:
    clauses, params = [], []
    if status is not None:
        clauses.append("status = ?")
        params.append(status)
    if comparison_id is not None:
        clauses.append("comparison_id = ?")
        params.append(comparison_id)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)


def _job_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    job_id, cid, label, spec, status, message, summary, created, started, finished, *identity = row
    optimizer, optimizer_label, seed = identity
    return {
        "id": job_id,
        "comparison_id": cid,
        "optimizer": optimizer,
        "optimizer_label": optimizer_label,
        "seed": seed,
        "label": label,
        "status": status,
        "message": message,
        "summary": json.loads(summary),
        "spec": json.loads(spec),
        "created": created,
        "started": started,
        "finished": finished,
    }


def _job_brief(row: tuple[Any, ...]) -> dict[str, Any]:
    *columns, task, steps, epochs = row
    job = _job_dict((*columns[:3], "null", *columns[3:]))  # the columns, spec left out
    del job["spec"]
    return {**job, "task": task, "steps": steps, "epochs": epochs}


def _dumps(value: Any) -> str:
    """Compact JSON; NaN/inf losses of diverged runs are kept (Python's json reads them back)."""
    return json.dumps(value, separators=(",", ":"))
