"""A small HTTP client of the playground's REST/SSE API (the UI's only way to the backend).

    client = ApiClient("http://127.0.0.1:8000/api")
    comparison = client.submit_comparison({"task": {"name": "rosenbrock"},
                                           "optimizers": [{"name": "adam"}], "steps": 200})
    for message in client.events(comparison["id"]):   # follows live, ends with the jobs
        print(message.id, message.event.type)

Events arrive as the server's own models (`server.events.StreamMessage`, its `event` one of
the `Event` union), so the UI reads typed fields. Errors from the server raise `ApiError`
carrying its status and one-line `detail`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx

from server.events import StreamMessage


class ApiError(Exception):
    """A non-2xx answer: `status` and the server's `detail` line."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status, self.detail = status, detail


class ApiClient:
    def __init__(self, base_url: str, token: str | None = None, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ plumbing
    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                detail = str(response.json().get("detail", response.text))
            except (ValueError, AttributeError):
                detail = response.text or response.reason_phrase
            raise ApiError(response.status_code, detail)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    # ------------------------------------------------------------------ catalogues
    def health(self) -> dict[str, Any]:
        return self._json("GET", "/health")

    def tasks(self) -> list[dict[str, Any]]:
        return self._json("GET", "/tasks")

    def optimizers(self) -> list[dict[str, Any]]:
        return self._json("GET", "/optimizers")

    def contour(
        self, task: str, options: dict[str, Any], seed: int = 0, resolution: int = 81
    ) -> dict[str, Any]:
        """A 2-D landscape on a grid: `{"x", "y", "z", "domain", "known_minima"}`."""
        params = {"options": json.dumps(options), "seed": seed, "resolution": resolution}
        return self._json("GET", f"/tasks/{task}/contour", params=params)

    # ------------------------------------------------------------------ comparisons
    def submit_comparison(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", "/comparisons", json=spec)

    def comparison(self, comparison_id: str) -> dict[str, Any]:
        return self._json("GET", f"/comparisons/{comparison_id}")

    def comparisons(self, offset: int = 0, limit: int = 50) -> dict[str, Any]:
        return self._json("GET", "/comparisons", params={"offset": offset, "limit": limit})

    def cancel_comparison(self, comparison_id: str) -> dict[str, Any]:
        return self._json("POST", f"/comparisons/{comparison_id}/cancel")

    def comparison_summary(self, comparison_id: str) -> dict[str, Any]:
        """Statistics over seeds: intervals, success rates, pairwise tests."""
        return self._json("GET", f"/comparisons/{comparison_id}/summary")

    def metrics(self, comparison_id: str, fmt: str) -> str:
        """Every job's metrics per step as the API writes them (`fmt` "json" or "csv")."""
        path = f"/comparisons/{comparison_id}/metrics"
        return self._request("GET", path, params={"format": fmt}).text

    # ------------------------------------------------------------------ sweeps
    def resolve_sweep(self, spec: dict[str, Any]) -> dict[str, Any]:
        """The sweep spec as the server would store it (default ranges filled in), nothing
        started; needs the token as starting one does."""
        return self._json("POST", "/sweeps", params={"dry_run": "true"}, json=spec)

    def submit_sweep(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", "/sweeps", json=spec)

    def sweep(self, sweep_id: str) -> dict[str, Any]:
        """Its trials, per optimizer the best and best-so-far, and the re-runs' summary."""
        return self._json("GET", f"/sweeps/{sweep_id}")

    def sweeps(self, offset: int = 0, limit: int = 50) -> dict[str, Any]:
        """Summaries, newest first: status, phase, task, optimizers, trials done / total."""
        return self._json("GET", "/sweeps", params={"offset": offset, "limit": limit})

    def cancel_sweep(self, sweep_id: str) -> dict[str, Any]:
        return self._json("POST", f"/sweeps/{sweep_id}/cancel")

    # ------------------------------------------------------------------ suites
    def suites(self) -> list[dict[str, Any]]:
        """Each suite's claim and the headline (verdict, finding) of its committed reports."""
        return self._json("GET", "/suites")

    def suite_report(self, name: str, report: str) -> dict[str, Any]:
        """A committed report: `report` is a mode (quick, full) or a partial run's name."""
        return self._json("GET", f"/suites/{name}/reports/{report}")

    def suite_figure(self, name: str, report: str, figure: str) -> str:
        return self._request("GET", f"/suites/{name}/reports/{report}/figures/{figure}.svg").text

    def start_suite(self, name: str, mode: str) -> dict[str, Any]:
        """Submit the suite's plan in `mode` (smoke or quick) as comparisons."""
        return self._json("POST", f"/suites/{name}/runs", json={"mode": mode})

    # ------------------------------------------------------------------ jobs
    def job(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"/jobs/{job_id}")

    def jobs(self, **params: Any) -> dict[str, Any]:
        return self._json("GET", "/jobs", params=params)

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        return self._json("POST", f"/jobs/{job_id}/cancel")

    # ------------------------------------------------------------------ events
    def events(
        self, comparison_id: str, last_event_id: int = 0, *, kind: str = "comparisons"
    ) -> Iterator[StreamMessage]:
        """The stream's messages (`job_id`, `id`, `event`) after `last_event_id`; follows
        live and ends when the server closes it (every job ended). `kind="jobs"` streams one
        job instead."""
        headers = {"Last-Event-ID": str(last_event_id)} if last_event_id else {}
        timeout = httpx.Timeout(10.0, read=60.0)  # heartbeats come every 15 s
        path = f"/{kind}/{comparison_id}/events"
        with self._http.stream("GET", path, headers=headers, timeout=timeout) as response:
            if response.status_code >= 400:
                response.read()
                raise ApiError(response.status_code, response.text)
            yield from parse_sse(response.iter_lines())


def parse_sse(lines: Iterator[str]) -> Iterator[StreamMessage]:
    """Decode server-sent events into the messages their `data` holds; comments skipped.
    A message that is not one (pydantic's ValidationError) ends the stream with an error."""
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                yield StreamMessage.model_validate_json("\n".join(data))
            data = []
        elif line.startswith(":"):
            continue
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
    if data:
        yield StreamMessage.model_validate_json("\n".join(data))
