"""SQLite tables of sweeps, their trials and their event log, beside the job store's.

The tables live in the job store's database file (one file to back up, one data folder),
on a connection of their own: the job store's connection and lock stay its own business.
SQLite serialises the two writers (WAL mode, a busy timeout). The schema has its own
version, kept in `sweep_schema` (the job store's `PRAGMA user_version` is not touched).

A sweep's event log (`sweep_events`) has AUTOINCREMENT ids, so an SSE client resumes with
`Last-Event-ID` as it does on a job stream; the ids are the sweep log's own.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from server.jobs.store import new_id

MIGRATIONS: tuple[str, ...] = (
    # Version 1: sweeps, trials, events.
    """
    CREATE TABLE sweeps (
        id TEXT PRIMARY KEY,
        spec JSON NOT NULL,
        status TEXT NOT NULL,
        phase TEXT NOT NULL,
        message TEXT NOT NULL DEFAULT '',
        comparison_id TEXT NULL,
        created REAL NOT NULL,
        finished REAL NULL
    );
    CREATE TABLE sweep_trials (
        sweep_id TEXT NOT NULL,
        optimizer INTEGER NOT NULL,
        number INTEGER NOT NULL,
        params JSON NOT NULL,
        job_id TEXT NULL,
        status TEXT NOT NULL,
        value REAL NULL,
        message TEXT NOT NULL DEFAULT '',
        intermediate JSON NOT NULL DEFAULT '{}',
        created REAL NOT NULL,
        finished REAL NULL,
        PRIMARY KEY (sweep_id, optimizer, number)
    );
    CREATE TABLE sweep_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        sweep_id TEXT NOT NULL,
        type TEXT NOT NULL,
        payload JSON NOT NULL
    );
    CREATE INDEX sweep_events_by_sweep ON sweep_events (sweep_id, id);
    """,
)
"""Ordered schema scripts; script i brings the sweep schema from version i to i + 1."""

_SWEEP_COLUMNS = "id, spec, status, phase, message, comparison_id, created, finished"
_TRIAL_COLUMNS = (
    "optimizer, number, params, job_id, status, value, message, intermediate, created, finished"
)
_TRIAL_FIELDS = ("job_id", "status", "value", "message", "intermediate", "finished")
_SWEEP_FIELDS = ("status", "phase", "message", "comparison_id", "finished")


class SweepStore:
    """Sweeps, trials and sweep events in `path`; every method is thread-safe."""

    def __init__(self, path: Path | str) -> None:
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            str(path), check_same_thread=False, isolation_level=None, timeout=30
        )
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = NORMAL")
        self._migrate()

    def _migrate(self) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute("CREATE TABLE IF NOT EXISTS sweep_schema (version INTEGER)")
                row = self._conn.execute("SELECT version FROM sweep_schema").fetchone()
                version = row[0] if row else 0
                if version > len(MIGRATIONS):
                    raise RuntimeError(
                        f"sweep tables have schema version {version}, newer than this server "
                        f"understands ({len(MIGRATIONS)}); upgrade the server"
                    )
                for script in MIGRATIONS[version:]:
                    for statement in filter(str.strip, script.split(";")):
                        self._conn.execute(statement)
                self._conn.execute("DELETE FROM sweep_schema")
                self._conn.execute("INSERT INTO sweep_schema VALUES (?)", (len(MIGRATIONS),))
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # ---- sweeps ---------------------------------------------------------------------------
    def create_sweep(self, spec: dict[str, Any]) -> str:
        sweep_id = new_id()
        self._write(
            "INSERT INTO sweeps (id, spec, status, phase, created) VALUES (?, ?, ?, ?, ?)",
            (sweep_id, _dumps(spec), "running", "search", time.time()),
        )
        return sweep_id

    def get_sweep(self, sweep_id: str) -> dict[str, Any] | None:
        rows = self._read(f"SELECT {_SWEEP_COLUMNS} FROM sweeps WHERE id = ?", (sweep_id,))
        return _sweep_dict(rows[0]) if rows else None

    def list_sweeps(self, offset: int = 0, limit: int = 50) -> tuple[list[dict[str, Any]], int]:
        """One page of sweeps, newest first, and how many there are."""
        total = self._read("SELECT COUNT(*) FROM sweeps", ())[0][0]
        rows = self._read(
            f"SELECT {_SWEEP_COLUMNS} FROM sweeps ORDER BY created DESC, rowid DESC"
            " LIMIT ? OFFSET ?",
            (max(0, limit), max(0, offset)),
        )
        return [_sweep_dict(row) for row in rows], total

    def active_sweeps(self) -> list[str]:
        rows = self._read("SELECT id FROM sweeps WHERE status = 'running' ORDER BY created", ())
        return [row[0] for row in rows]

    def update_sweep(self, sweep_id: str, **fields: Any) -> None:
        self._update("sweeps", _SWEEP_FIELDS, fields, "id = ?", (sweep_id,))

    def delete_sweep(self, sweep_id: str) -> bool:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            for table in ("sweep_trials", "sweep_events"):
                self._conn.execute(f"DELETE FROM {table} WHERE sweep_id = ?", (sweep_id,))
            deleted = self._conn.execute("DELETE FROM sweeps WHERE id = ?", (sweep_id,)).rowcount
            self._conn.execute("COMMIT")
        return deleted > 0

    # ---- trials ---------------------------------------------------------------------------
    def add_trial(self, sweep_id: str, optimizer: int, number: int, params: dict) -> None:
        """A trial asked for, not yet submitted (status running, no job)."""
        self._write(
            "INSERT INTO sweep_trials (sweep_id, optimizer, number, params, status, created)"
            " VALUES (?, ?, ?, ?, 'running', ?)",
            (sweep_id, optimizer, number, _dumps(params), time.time()),
        )

    def update_trial(self, sweep_id: str, optimizer: int, number: int, **fields: Any) -> None:
        where = "sweep_id = ? AND optimizer = ? AND number = ?"
        self._update("sweep_trials", _TRIAL_FIELDS, fields, where, (sweep_id, optimizer, number))

    def trials(self, sweep_id: str) -> list[dict[str, Any]]:
        """Every trial of the sweep, by optimizer then number."""
        rows = self._read(
            f"SELECT {_TRIAL_COLUMNS} FROM sweep_trials WHERE sweep_id = ?"
            " ORDER BY optimizer, number",
            (sweep_id,),
        )
        return [_trial_dict(row) for row in rows]

    # ---- events ---------------------------------------------------------------------------
    def append_event(self, sweep_id: str, event: dict[str, Any]) -> int:
        with self._lock:
            cursor = self._conn.execute(
                "INSERT INTO sweep_events (sweep_id, type, payload) VALUES (?, ?, ?)",
                (sweep_id, event["type"], _dumps(event)),
            )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def events(self, sweep_id: str, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        """Rows {"id", "sweep_id", "event"} with id > after, in id order."""
        rows = self._read(
            "SELECT id, payload FROM sweep_events WHERE sweep_id = ? AND id > ?"
            " ORDER BY id LIMIT ?",
            (sweep_id, after, max(0, limit)),
        )
        return [{"id": i, "sweep_id": sweep_id, "event": json.loads(p)} for i, p in rows]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # ---- internals ------------------------------------------------------------------------
    def _read(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        with self._lock:
            self._conn.execute(sql, params)

    def _update(
        self,
        table: str,
        allowed: tuple[str, ...],
        fields: dict[str, Any],
        where: str,
        key: tuple[Any, ...],
    ) -> None:
        unknown = set(fields) - set(allowed)
        if unknown:
            raise ValueError(f"cannot update {', '.join(sorted(unknown))} of {table}")
        values = [_dumps(v) if isinstance(v, dict) else v for v in fields.values()]
        sets = ", ".join(f"{name} = ?" for name in fields)
        self._write(f"UPDATE {table} SET {sets} WHERE {where}", (*values, *key))


def _sweep_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    sweep_id, spec, status, phase, message, cid, created, finished = row
    return {
        "id": sweep_id,
        "spec": json.loads(spec),
        "status": status,
        "phase": phase,
        "message": message,
        "comparison_id": cid,
        "created": created,
        "finished": finished,
    }


def _trial_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    optimizer, number, params, job_id, status, value, message, inter, created, finished = row
    return {
        "optimizer_index": optimizer,
        "number": number,
        "params": json.loads(params),
        "job_id": job_id,
        "status": status,
        "value": value,
        "message": message,
        "intermediate": json.loads(inter),
        "created": created,
        "finished": finished,
    }


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
