"""Ray execution: each task is one Ray task, on a local Ray instance or a cluster.

``RayExecutor(address=None)`` starts a local Ray instance sized to the machine (or to
``num_cpus``); ``RayExecutor(address="HOST:6379")`` (or ``"auto"``) joins a running
cluster started with ``ray start --head``. If Ray is already initialised in this
process (a test fixture, a notebook), that instance is used and left running.

Workers return Cell records; the driver (``run_sweep``) is the only writer of the
store. A task whose worker dies (process killed, node lost) is resubmitted up to
``max_retries`` times and then yielded as ``failed`` cells carrying the error. Ray's
own task retries are switched off so that this executor counts attempts itself.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Iterable, Iterator

from petridish.errors import check_number
from petridish.lab.executors.base import Executor, failed_cells
from petridish.lab.experiment import Cell, Experiment
from petridish.lab.worker import Task, run_task

try:
    import ray
    from ray.exceptions import RayError, RayTaskError
except ImportError as e:   # optional extra: pip install 'petridish[ray]'
    raise ImportError("The ray executor needs Ray: pip install 'petridish[ray]'.") from e

from petridish.lab.executors.ray_connect import connect  # noqa: E402  (address, token, one-line errors)


def _run_remote(task: Task, experiment: Experiment | None) -> list[Cell]:
    return run_task(task, experiment)


class RayExecutor(Executor):
    """Runs each task as a Ray task with one CPU (one torch thread).

    At most ``2 × cluster CPUs`` tasks are in flight, so a huge sweep does not flood
    the object store and results stream back as they finish.
    """

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, max_retries: int = 2,
                 *, experiment: Experiment | None = None):
        if num_cpus is not None:
            num_cpus = check_number(num_cpus, "num_cpus", "RayExecutor", kind=int, low=1)
        self.max_retries = check_number(max_retries, "max_retries", "RayExecutor", kind=int, low=0)
        self.address = address
        self.num_cpus = num_cpus
        self.experiment = experiment        # tests ship a test-only Experiment; normally looked up by name
        self._started = False
        self._inflight: dict[Any, tuple[Task, int]] = {}

    def _ensure(self) -> None:
        self._started = connect(self.address, self.num_cpus) or self._started

    def run(self, tasks: Iterable[Task]) -> Iterator[tuple[Task, list[Cell]]]:
        self._ensure()
        remote = ray.remote(num_cpus=1, max_retries=0)(_run_remote)
        exp_ref = ray.put(self.experiment)
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        queue: list[tuple[Task, int]] = [(replace(t, threads=1), 0) for t in tasks]   # keeps .source
        queue.reverse()                                   # pop() from the end keeps sweep order
        inflight = self._inflight
        while queue or inflight:
            while queue and len(inflight) < 2 * cpus:
                task, attempt = queue.pop()
                inflight[remote.remote(task, exp_ref)] = (task, attempt)
            ready, _ = ray.wait(list(inflight), num_returns=1)
            for ref in ready:
                task, attempt = inflight.pop(ref)
                try:
                    cells = ray.get(ref)
                except RayTaskError as e:                  # raised outside the experiment: not retried
                    yield task, failed_cells(task, f"{type(e.cause).__name__}: {e.cause}"
                                             if getattr(e, "cause", None) else str(e).splitlines()[0])
                    continue
                except RayError as e:                      # worker died, node lost, object lost: retry
                    if attempt < self.max_retries:
                        queue.append((task, attempt + 1))
                    else:
                        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                        yield task, failed_cells(
                            task, f"worker died {attempt + 1} times ({type(e).__name__}): {first}")
                    continue
                yield task, cells

    def close(self) -> None:
        for ref in list(self._inflight):
            try:
                ray.cancel(ref, force=True)
            except Exception:   # already finished or the cluster is gone
                pass
        self._inflight.clear()
        if self._started and ray.is_initialized():
            ray.shutdown()
        self._started = False
