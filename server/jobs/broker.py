"""In-process pub/sub of stored events, from executor threads to SSE streams on the loop.

`publish` is called from any thread after events are stored; it hands the rows to the
event loop with one `call_soon_threadsafe` per call (a batch of rows wakes the loop once),
so the publisher never waits for a subscriber and the loop never waits for a lock. Each
subscriber has a bounded queue: a client that reads too slowly is marked `lagged` instead
of growing memory, and catches up from the store (the rows are there anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

#: a row from JobStore.events(): {"id": int, "job_id": str, "event": dict}
Row = dict[str, Any]
#: what a subscription receives when one of its jobs is deleted
DELETED = "deleted"


class Subscription:
    """Rows of some jobs, in publish order; read with `await sub.get()`."""

    def __init__(self, job_ids: Iterable[str], maxsize: int) -> None:
        self.job_ids = frozenset(job_ids)
        self.queue: asyncio.Queue[Row] = asyncio.Queue(maxsize)
        #: set when rows were dropped because the queue was full; the reader then
        #: re-reads from the store after the last id it sent.
        self.lagged = False

    async def get(self) -> Row:
        return await self.queue.get()

    def _offer(self, row: Row) -> None:
        try:
            self.queue.put_nowait(row)
        except asyncio.QueueFull:
            self.lagged = True


class Broker:
    """Fan-out of published rows to the subscriptions that cover their job."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue_size: int = 10_000) -> None:
        self.loop = loop
        self.queue_size = queue_size
        self._subscriptions: set[Subscription] = set()

    def publish(self, job_id: str, *rows: Row) -> None:
        """Deliver stored rows of `job_id`, in order, to its subscribers; safe from any
        thread."""
        with contextlib.suppress(RuntimeError):  # loop closed: nobody is listening
            self.loop.call_soon_threadsafe(self._deliver, job_id, rows)

    def deleted(self, job_id: str) -> None:
        """Tell subscribers that `job_id` is gone (its stream has nothing more to wait for)."""
        self.publish(job_id, {"id": None, "job_id": job_id, DELETED: True})

    def subscribe(self, job_ids: Iterable[str]) -> Subscription:
        """Start receiving rows of `job_ids`; call on the loop, pair with `unsubscribe`."""
        sub = Subscription(job_ids, self.queue_size)
        self._subscriptions.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscriptions.discard(sub)

    @contextlib.contextmanager
    def subscription(self, job_ids: Iterable[str]) -> Iterator[Subscription]:
        sub = self.subscribe(job_ids)
        try:
            yield sub
        finally:
            self.unsubscribe(sub)

    @property
    def subscribers(self) -> int:
        return len(self._subscriptions)

    def _deliver(self, job_id: str, rows: tuple[Row, ...]) -> None:
        for sub in list(self._subscriptions):
            if job_id in sub.job_ids:
                for row in rows:
                    sub._offer(row)
