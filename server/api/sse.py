"""Server-sent event streams of one or more jobs' events.

Each event goes out as

    id: <global event id>
    event: <type>                 (started, metrics, eval, spectrum, trajectory, status)
    data: {"job_id": ..., "id": ..., "event": {...}}

A client resumes after the last id it saw (`Last-Event-ID` header, as browsers send on
reconnect, or `?last_event_id=`): stored events after it are replayed from the store, then
live ones follow from the broker, deduplicated by id. The stream ends once every job has
ended and its final status event was sent (or was before `Last-Event-ID`); a stream of
finished jobs replays and closes at once. A comment line is sent when idle for
`heartbeat` seconds, and the store is re-read then, as a safety net.

A replay goes out one page of events per write, live events one published batch (what
the executor read from a worker in one pass) per write, so that a landscape's event per
step does not cost a write, a wake-up and a disconnect check each. The stream stops as soon
as the client has gone (checked after every write), logging that once: writing event after
event to a closed socket without returning to the event loop made asyncio log
`socket.send() raised exception.` for each write.

Why subscribe before replaying: an event stored after the replay's read is then surely in
the subscription, and one stored before is in the replay; the id dedupes the overlap.
Why a job whose stored status is final counts as done after a replay: the service stores
a job's final event before its final status, so the replay read after the status holds it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool

from server.events import ENDED_STATUSES
from server.jobs.broker import DELETED, Subscription
from server.jobs.service import JobService
from server.jsonable import json_safe

log = logging.getLogger(__name__)

PAGE = 2000
HEARTBEAT = b": heartbeat\n\n"


def encode(row: dict[str, Any]) -> bytes:
    event = row["event"]
    data = json.dumps(
        json_safe({"job_id": row["job_id"], "id": row["id"], "event": event}),
        separators=(",", ":"),
        allow_nan=False,
    )
    return f"id: {row['id']}\nevent: {event.get('type', 'message')}\ndata: {data}\n\n".encode()


async def event_stream(
    service: JobService,
    job_ids: list[str],
    after: int,
    heartbeat: float,
    disconnected: Callable[[], Awaitable[bool]],
) -> AsyncIterator[bytes]:
    """The stream's chunks until every job has ended or `disconnected()` says the client left."""
    stream = _Stream(service, job_ids, after)
    try:
        with service.broker.subscription(job_ids) as sub:
            async for chunk in stream.follow(sub, heartbeat):
                yield chunk
                if await disconnected():
                    return
    finally:
        if not stream.finished:
            log.info(
                "event stream of %s: client disconnected (or server stopping) after event %d",
                ", ".join(stream.job_ids),
                stream.last,
            )


class _Stream:
    def __init__(self, service: JobService, job_ids: list[str], after: int) -> None:
        self.service = service
        self.job_ids = list(dict.fromkeys(job_ids))
        self.last = after
        self.done: set[str] = set()

    @property
    def finished(self) -> bool:
        return self.done.issuperset(self.job_ids)

    def _send(self, row: dict[str, Any]) -> bytes | None:
        if row["id"] <= self.last:
            return None
        self.last = row["id"]
        if row["event"].get("type") == "status":
            self.done.add(row["job_id"])
        return encode(row)

    async def follow(self, sub: Subscription, heartbeat: float) -> AsyncIterator[bytes]:
        async for chunk in self.catch_up():
            yield chunk
        while not self.finished:
            try:
                row = await asyncio.wait_for(sub.get(), heartbeat)
            except asyncio.TimeoutError:
                yield HEARTBEAT
                async for chunk in self.catch_up():
                    yield chunk
                continue
            async for chunk in self.live([row, *_pending(sub)], sub):
                yield chunk

    async def catch_up(self) -> AsyncIterator[bytes]:
        """Send what the store holds after `last`, a page per chunk; mark the jobs that
        have ended."""
        store = self.service.store
        pending = [job_id for job_id in self.job_ids if job_id not in self.done]
        if not pending:
            return
        jobs = await run_in_threadpool(lambda: [store.get_job(job_id) for job_id in pending])
        while True:
            rows = await run_in_threadpool(store.events, pending, self.last, PAGE)
            page = b"".join(chunk for chunk in map(self._send, rows) if chunk is not None)
            if page:
                yield page
            if len(rows) < PAGE:
                break
        for job_id, job in zip(pending, jobs):
            if job is None or job["status"] in ENDED_STATUSES:
                self.done.add(job_id)

    async def live(self, rows: list[dict[str, Any]], sub: Subscription) -> AsyncIterator[bytes]:
        """Send rows the broker delivered, all in one chunk (one write, one disconnect
        check); a deleted job's rows end its part of the stream."""
        if sub.lagged:  # rows were dropped: the store has them all, in order
            sub.lagged = False
            async for chunk in self.catch_up():
                yield chunk
        chunks = []
        for row in rows:
            if row.get(DELETED):
                self.done.add(row["job_id"])
                continue
            chunk = self._send(row)
            if chunk is not None:
                chunks.append(chunk)
        if chunks:
            yield b"".join(chunks)


def _pending(sub: Subscription) -> list[dict[str, Any]]:
    """The rows already waiting in a subscription's queue (delivered in one hand-over)."""
    rows = []
    while not sub.queue.empty():
        rows.append(sub.queue.get_nowait())
    return rows
