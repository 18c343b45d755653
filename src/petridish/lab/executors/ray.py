"""Ray execution: each task is one Ray task, on a local Ray instance or a cluster.

``RayExecutor(address=None)`` starts a local Ray instance sized to the machine (or to
``num_cpus``); ``RayExecutor(address="HOST:6379")`` (or ``"auto"``) joins a running
cluster started with ``ray start --head``. If Ray is already initialised in this
process (a test fixture, a notebook), that instance is used and left running.

Workers return Cell records; the driver (``run_sweep``) is the only writer of the
store. Retries follow the one policy of ``executors.base``; Ray's own task retries
are switched off so that the base class counts attempts.

Progress (only when the driver listens): one ``ray.util.queue.Queue`` actor (no CPU
reserved) per executor; each task gets a ``QueueSink`` and the driver drains the queue
every ``POLL_S`` seconds while it waits for results.
"""
from __future__ import annotations

from typing import Any

from petridish.errors import check_number
from petridish.lab.executors.base import Executor, WorkerDied
from petridish.lab.experiment import Cell
from petridish.lab.worker import QueueSink, Task, failed_cells, run_task

try:
    import ray
    from ray.exceptions import RayError, RayTaskError
except ImportError as e:   # optional extra: pip install 'petridish[ray]'
    raise ImportError("The ray executor needs Ray: pip install 'petridish[ray]'.") from e

from petridish.lab.executors.ray_connect import connect  # noqa: E402  (address, token, one-line errors)


POLL_S = 0.25      # how often the driver drains progress messages while it waits for results


def _run_remote(task: Task, sink: QueueSink | None = None) -> list[Cell]:
    return run_task(task, sink)


class RayExecutor(Executor):
    """Runs each task as a Ray task with one CPU (one thread), on a local instance or a cluster.

    At most ``2 × workers`` tasks are in flight (``workers`` defaults to the cluster's
    CPUs), so a huge sweep does not flood the object store and results stream back.
    """

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, max_retries: int = 2,
                 workers: int | None = None):
        super().__init__()
        if num_cpus is not None:
            num_cpus = check_number(num_cpus, "num_cpus", "RayExecutor", kind=int, low=1)
        if workers is not None:
            workers = check_number(workers, "workers", "RayExecutor", kind=int, low=1)
        self.max_retries = check_number(max_retries, "max_retries", "RayExecutor", kind=int, low=0)
        self.address = address
        self.num_cpus = num_cpus
        self._workers = workers
        self._started = False
        self._remote = None
        self._queue: Any = None         # ray.util.queue.Queue of (ticket, done, total), while progress is on
        self._refs: dict[Any, int] = {}

    @property
    def workers(self) -> int:        # type: ignore[override]
        if self._workers is None:
            self._ensure()
            self._workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        return self._workers

    def _ensure(self) -> None:
        if self._remote is None or not ray.is_initialized():
            self._started = connect(self.address, self.num_cpus) or self._started
            self._remote = ray.remote(num_cpus=1, max_retries=0)(_run_remote)

    def _start(self, ticket: int, task: Task) -> None:
        self._ensure()
        if self.progress is not None and self._queue is None:
            from ray.util.queue import Queue
            self._queue = Queue(actor_options={"num_cpus": 0})
        sink = QueueSink(self._queue, ticket) if self.progress is not None else None
        self._refs[self._remote.remote(task, sink)] = ticket

    def _drain(self) -> None:
        if self._queue is None:
            return
        try:
            n = self._queue.qsize()
            items = self._queue.get_nowait_batch(n) if n else []
        except Exception:            # the queue actor is gone: progress stops, results do not
            return
        for ticket, done, total in items:
            self._report(ticket, done, total)

    def _collect(self) -> list[tuple[int, list[Cell] | WorkerDied]]:
        ready: list[Any] = []
        while not ready and self._refs:
            ready, _ = ray.wait(list(self._refs), num_returns=1,
                                timeout=POLL_S if self._queue is not None else None)
            self._drain()
        out: list[tuple[int, list[Cell] | WorkerDied]] = []
        for ref in ready:
            ticket = self._refs.pop(ref)
            try:
                out.append((ticket, ray.get(ref)))
            except RayTaskError as e:                  # raised outside the experiment: not retried
                task, _ = self._pending[ticket]
                cause = getattr(e, "cause", None)
                out.append((ticket, failed_cells(task, f"{type(cause).__name__}: {cause}" if cause
                                                 else str(e).splitlines()[0])))
            except RayError as e:                      # worker died, node lost, object lost: retried
                first = (str(e).strip().splitlines() or [""])[0]
                out.append((ticket, WorkerDied(f"{type(e).__name__}: {first}")))
        return out

    def close(self) -> None:
        super().close()
        for ref in list(self._refs):
            try:
                ray.cancel(ref, force=True)
            except Exception:   # already finished or the cluster is gone
                pass
        self._refs.clear()
        if self._queue is not None:
            try:
                self._queue.shutdown(force=True)
            except Exception:   # the cluster is gone
                pass
            self._queue = None
        if self._started and ray.is_initialized():
            ray.shutdown()
        self._started = False
        self._remote = None
