"""Follow a comparison's event stream in a background thread, for every browser session.

`follow(client, comparison_id)` returns the one `Follower` of that comparison (a reload or a
second tab reuses it): it reads the SSE stream through the client, keeps every event per
job, and reconnects with `Last-Event-ID` after a dropped connection until the stream ends.
The UI's timer only reads `snapshot()`; `version` tells it whether anything changed.
Right after Run the UI does not wait for its timer: `wait_for_metrics` returns as soon as
the first loss value has arrived, so the loss figure is drawn at once.
"""

from __future__ import annotations

import threading
import time

from playground.client import ApiClient, ApiError
from server.events import Event, Metrics

_FOLLOWERS: dict[tuple[str, str], Follower] = {}
_LOCK = threading.Lock()


class Follower:
    def __init__(self, client: ApiClient, comparison_id: str) -> None:
        self.client, self.comparison_id = client, comparison_id
        self.events: dict[str, list[Event]] = {}
        self.last_id = 0
        self.version = 0
        self.done = False
        self.error: str | None = None
        self._lock = threading.Lock()
        self._metrics = threading.Event()  # set by the first loss value, or the stream's end
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"sse-{comparison_id}")
        self._thread.start()

    def _run(self) -> None:
        failures = 0
        while not self.done:
            try:
                for message in self.client.events(self.comparison_id, self.last_id):
                    with self._lock:
                        self.events.setdefault(message.job_id, []).append(message.event)
                        self.last_id = max(self.last_id, message.id)
                        self.version += 1
                    if isinstance(message.event, Metrics):
                        self._metrics.set()
                self.done = True  # the server closes the stream once every job ended
            except ApiError as error:
                if error.status == 404:
                    self.error, self.done = f"comparison {self.comparison_id} not found", True
                failures += 1
            except Exception:  # dropped connection: resume after the last id seen
                failures += 1
            if failures > 30:
                self.error, self.done = "lost the event stream", True
            elif not self.done:
                time.sleep(min(0.2 * failures, 2.0))
        self._metrics.set()  # nothing more will come: no one waits for it

    def wait_for_metrics(self, timeout: float) -> bool:
        """Block until a loss value has arrived or the stream ended (True), or `timeout`
        seconds passed (False)."""
        return self._metrics.wait(timeout)

    def snapshot(self) -> tuple[int, dict[str, list[Event]]]:
        with self._lock:
            return self.version, {job: list(events) for job, events in self.events.items()}


def follow(client: ApiClient, comparison_id: str) -> Follower:
    key = (client.base_url, comparison_id)
    with _LOCK:
        follower = _FOLLOWERS.get(key)
        if follower is None or (follower.error and follower.done):
            follower = _FOLLOWERS[key] = Follower(client, comparison_id)
        return follower
