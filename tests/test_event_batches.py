"""Events in batches, from a worker's pipe to the store and the SSE stream (issue 12): what
the executor reads from a job's pipe in one pass reaches the service as one list, is stored
in one transaction, published in one hand-over and written to a stream as one chunk, with
ids, order, downsampling and crash handling as when events came one at a time."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_executor import FakeExecutor
from scripted_worker import run_scripted_worker

from server.api.sse import event_stream
from server.jobs.broker import Broker
from server.jobs.executor import _READ_BATCH, LocalExecutor, _Job
from server.jobs.service import JobService
from server.jobs.store import JobStore
from server.settings import Settings

pytestmark = pytest.mark.timeout(60)


def metrics(step: int, loss: float = 1.0) -> dict[str, Any]:
    return {"type": "metrics", "step": step, "loss": loss}


def final(step: int) -> dict[str, Any]:
    return {"type": "status", "step": step, "status": "succeeded", "message": "", "summary": {}}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    with JobStore(tmp_path / "jobs.sqlite", max_metric_points=10) as store:
        yield store


def commits_during(store: JobStore, action: Any) -> int:
    """How many COMMIT statements the store's connection ran during `action()`."""
    statements: list[str] = []
    store._conn.set_trace_callback(statements.append)
    try:
        action()
    finally:
        store._conn.set_trace_callback(None)
    return sum(statement.strip().upper() == "COMMIT" for statement in statements)


# ---- store --------------------------------------------------------------------------------


def test_a_batch_of_events_is_stored_in_one_transaction_in_order(store: JobStore) -> None:
    job_id = store.create_job({"task": {"name": "rosenbrock"}})
    batch = [metrics(step) for step in range(1, 16)]
    ids: list[int] = []
    assert commits_during(store, lambda: ids.extend(store.append_events(job_id, batch))) == 1
    assert ids == sorted(ids) and len(set(ids)) == len(batch)
    rows = store.events([job_id])
    assert [row["id"] for row in rows] == ids
    assert [row["event"] for row in rows] == batch
    later = store.append_event(job_id, final(15))
    assert later > ids[-1]  # ids stay global and increasing across batches


def test_batches_are_thinned_exactly_as_single_events(tmp_path: Path) -> None:
    events = [metrics(step, loss=1.0 / step) for step in range(1, 101)]
    stored = []
    for name, chunk in (("one", 1), ("batched", 7)):
        with JobStore(tmp_path / f"{name}.sqlite", max_metric_points=10) as store:
            job_id = store.create_job({})
            for start in range(0, len(events), chunk):
                store.append_events(job_id, events[start : start + chunk])
            stored.append([row["event"] for row in store.events([job_id])])
    assert len(stored[0]) < 30  # thinned as the job ran (to ~10, kept under 2 × 10)
    assert stored[0] == stored[1]


def test_a_batch_for_an_unknown_job_stores_nothing(store: JobStore) -> None:
    with pytest.raises(KeyError):
        store.append_events("nope", [metrics(1), metrics(2)])
    assert store.events(["nope"]) == []


# ---- service ------------------------------------------------------------------------------


class RecordingBroker:
    """A broker that records each publish call (one hand-over to the event loop each)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[dict[str, Any], ...]]] = []

    def publish(self, job_id: str, *rows: dict[str, Any]) -> None:
        self.calls.append((job_id, rows))


def test_the_service_stores_and_publishes_a_batch_at_once(store: JobStore, tmp_path) -> None:
    broker = RecordingBroker()
    service = JobService(store, FakeExecutor(), broker, Settings(data_dir=tmp_path))  # type: ignore[arg-type]
    job_id = store.create_job({"task": {"name": "rosenbrock"}})
    batch = [{"type": "started", "step": 0}, *(metrics(step) for step in range(1, 6)), final(5)]
    late = metrics(6)  # after the final status: dropped, as a single event would be
    commits = commits_during(store, lambda: service.on_events(job_id, [*batch, late]))
    assert commits == 3  # the events; `started` marks the job running; the final status
    assert len(broker.calls) == 1
    published_job, rows = broker.calls[0]
    assert published_job == job_id
    assert [row["event"] for row in rows] == batch
    assert [row["id"] for row in rows] == [row["id"] for row in store.events([job_id])]
    assert store.get_job(job_id)["status"] == "succeeded"
    service.on_events(job_id, [metrics(7)])  # the job has ended: nothing more is stored
    assert len(store.events([job_id])) == len(batch) and len(broker.calls) == 1


# ---- executor -----------------------------------------------------------------------------


class BatchRecorder:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.batches: list[list[dict[str, Any]]] = []
        self.exits: dict[str, str | None] = {}

    def on_events(self, job_id: str, events: list[dict[str, Any]]) -> None:
        with self.cond:
            self.batches.append(list(events))

    def on_exit(self, job_id: str, error: str | None) -> None:
        with self.cond:
            self.exits[job_id] = error
            self.cond.notify_all()


class ScriptedExecutor(LocalExecutor):
    worker_main = staticmethod(run_scripted_worker)


@pytest.mark.parametrize("end", ["status", "crash"])
def test_a_burst_of_events_reaches_the_service_in_few_batches_in_order(end: str) -> None:
    burst = 200
    executor = ScriptedExecutor(concurrency=1, pool_size=0, memory_limit_mb=0)
    recorder = BatchRecorder()
    executor.start_batched(recorder.on_events, recorder.on_exit)
    try:
        executor.submit("job", {"burst": burst, "end": end})
        with recorder.cond:
            assert recorder.cond.wait_for(lambda: "job" in recorder.exits, 30)
    finally:
        executor.shutdown()
    events = [event for batch in recorder.batches for event in batch]
    assert [event["step"] for event in events[:burst]] == list(range(1, burst + 1))
    assert len(recorder.batches) < burst // 2  # read in passes, not one by one
    if end == "status":
        assert recorder.exits["job"] is None and events[-1]["type"] == "status"
    else:  # every event the worker sent before it died is kept; the service adds the failure
        assert len(events) == burst
        assert recorder.exits["job"] == "worker process exited with code -9 before finishing"


def test_one_read_pass_is_one_batch_even_when_the_pipe_ends_or_breaks() -> None:
    executor = LocalExecutor(concurrency=1, pool_size=0, memory_limit_mb=0)
    recorder = BatchRecorder()
    executor._on_events = recorder.on_events
    reader, writer = multiprocessing.Pipe(duplex=False)
    job = _Job("job", {}, stop=None, conn=reader)
    for step in range(1, 11):
        writer.send(metrics(step))
    writer.send_bytes(b"not a pickle")  # an undecodable message: the channel is unusable
    writer.send(metrics(11))
    assert executor._read(job, _READ_BATCH)  # it read all there was to read
    assert [[event["step"] for event in batch] for batch in recorder.batches] == [
        list(range(1, 11))
    ]
    assert job.conn is None and job.step == 10
    writer.close()

    reader, writer = multiprocessing.Pipe(duplex=False)
    job = _Job("job", {}, stop=None, conn=reader)
    for step in range(1, 6):
        writer.send(metrics(step))
    writer.close()  # the worker has gone: end of file after its events
    recorder.batches.clear()
    executor._read(job, None)
    assert [[event["step"] for event in batch] for batch in recorder.batches] == [[1, 2, 3, 4, 5]]
    assert job.conn is None


# ---- SSE ----------------------------------------------------------------------------------


class StreamService:
    """What `event_stream` needs of the service: its store and broker."""

    def __init__(self, store: JobStore, broker: Broker) -> None:
        self.store, self.broker = store, broker


def test_rows_published_together_go_out_in_one_chunk(store: JobStore) -> None:
    job_id = store.create_job({"task": {"name": "rosenbrock"}})
    store.set_status(job_id, "running")

    async def scenario() -> list[bytes]:
        broker = Broker(asyncio.get_running_loop())
        service = StreamService(store, broker)

        async def connected() -> bool:
            return False

        chunks: list[bytes] = []
        stream = event_stream(service, [job_id], 0, 5.0, connected)  # type: ignore[arg-type]
        reader = asyncio.ensure_future(_collect(stream, chunks))
        while broker.subscribers == 0:
            await asyncio.sleep(0.01)
        for batch in ([metrics(step) for step in range(1, 9)], [final(8)]):
            ids = store.append_events(job_id, batch)
            rows = [{"id": i, "job_id": job_id, "event": e} for i, e in zip(ids, batch)]
            broker.publish(job_id, *rows)
            await asyncio.sleep(0.05)
        store.set_status(job_id, "succeeded")
        await asyncio.wait_for(reader, 5)
        return chunks

    chunks = asyncio.run(scenario())
    assert [chunk.count(b"\nevent: ") for chunk in chunks] == [8, 1]
    ids = [
        int(line.split()[1])
        for chunk in chunks
        for line in chunk.decode().splitlines()
        if line.startswith("id: ")
    ]
    assert ids == [row["id"] for row in store.events([job_id])]


async def _collect(stream: Any, chunks: list[bytes]) -> None:
    async for chunk in stream:
        chunks.append(chunk)
