"""How fast jobs may be created and how large the job store may grow (429 beyond either).

Why both: a cancelled job leaves the queue at once, so `max_queued` alone let a client
create, cancel and create again without end, each job's spec and events kept. Every
created job counts against a one-minute sliding window (`max_jobs_per_minute`, cancelled
ones included), and no job is created while the store's pages hold `max_store_mb` or more
(deleting jobs frees them).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from server.jobs.store import JobStore
from server.settings import Settings

WINDOW_SECONDS = 60.0
MB = 2**20


class QuotaExceeded(Exception):
    """Refused for now; `retry_after` seconds until it would fit (None: not by waiting)."""

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class JobQuota:
    """The two limits, checked and counted by `admit` before jobs are stored."""

    def __init__(
        self, store: JobStore, settings: Settings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.store, self.settings, self.clock = store, settings, clock
        self._created: deque[tuple[float, int]] = deque()  # (when, how many jobs)
        self._in_window = 0
        self._lock = threading.Lock()

    def admit(self, jobs: int) -> None:
        """Count `jobs` new jobs, or raise QuotaExceeded. A request larger than the whole
        window (a comparison of up to `max_queued` jobs) is admitted into an empty one."""
        limit_mb = self.settings.max_store_mb
        used = self.store.size_bytes()
        if used >= limit_mb * MB:
            raise QuotaExceeded(
                f"the job store holds {used / MB:.0f} MB, its limit is {limit_mb} MB "
                "(max_store_mb); delete old jobs or comparisons"
            )
        with self._lock:
            now = self.clock()
            while self._created and self._created[0][0] <= now - WINDOW_SECONDS:
                self._in_window -= self._created.popleft()[1]
            limit = self.settings.max_jobs_per_minute
            if self._in_window and self._in_window + jobs > limit:
                raise QuotaExceeded(
                    f"{self._in_window} jobs were created in the last minute and this server "
                    f"creates at most {limit} a minute (max_jobs_per_minute); retry later",
                    self._wait(now, self._in_window + jobs - limit),
                )
            self._created.append((now, jobs))
            self._in_window += jobs

    def _wait(self, now: float, excess: int) -> int:
        """Seconds until enough of the window's jobs have aged out to free `excess` slots."""
        freed = 0
        for when, count in self._created:
            freed += count
            if freed >= excess:
                return max(1, math.ceil(when + WINDOW_SECONDS - now))
        return math.ceil(WINDOW_SECONDS)
