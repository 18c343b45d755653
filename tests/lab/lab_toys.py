"""Tiny experiments for the lab's own tests (importable by spawned workers via sys.path;
Ray tests ship this module by value). None of them is registered under its name: a
worker can only run them from the experiment its task carries."""
import os
import time

from petridish.lab import Experiment, Param, Pruned


def _run(p, seed):
    if p.get("sleep"):
        time.sleep(p["sleep"])
    if p["x"] == 13:
        raise RuntimeError("unlucky cell")
    if p["x"] == 666:
        return {"y": float("inf"), "diverged": True}
    return {"y": p["x"] * 10 + seed, "pid": os.getpid()}


def _run_group(plist, seeds):
    return [dict(_run(p, s), grouped=len(plist)) for p, s in zip(plist, seeds)]


TOY = Experiment(name="toy", question="q", reference="r",
                 params=(Param("x", int, default=[1, 2, 3], low=0), Param("sleep", float, default=0.0, low=0)),
                 run=_run, seeds=2)

TOY_GROUPED = Experiment(name="toy-grouped", question="q", reference="r",
                         params=(Param("x", int, default=[1, 2, 3], low=0), Param("sleep", float, default=0.0),
                                 Param("tag", str, default=["a", "b"], choices=("a", "b"))),
                         run=_run, run_group=_run_group, group_by=("tag",), seeds=2)


def _threads_run(p, seed):
    import torch
    from threadpoolctl import threadpool_info
    return {"torch_threads": torch.get_num_threads(),
            "blas_threads": max((i["num_threads"] for i in threadpool_info()), default=1)}


THREADS = Experiment(name="toy-threads", question="q", reference="r",
                     params=(Param("x", int, default=[1, 2]),), run=_threads_run, seeds=1)


def _prunable_run(p, seed):
    from petridish.lab import report_intermediate
    for t in range(1, 9):
        report_intermediate(t, p["x"] + 1.0 / t)
    return {"loss": p["x"] + 1.0 / 8}


PRUNABLE = Experiment(name="toy-prunable", question="q", reference="r",
                      params=(Param("x", int, default=[1, 2]),), run=_prunable_run, seeds=1)


class PruneAt:
    """A picklable reporter that prunes the cell at ``step``."""

    def __init__(self, step):
        self.step = step

    def __call__(self, step, value, metric=None):
        if step >= self.step:
            raise Pruned(f"pruned at step {step}")


def attempts(marker_dir: str, x: int, seed: int) -> int:
    """How many times the cell (x, seed) of CRASHY has started."""
    path = os.path.join(marker_dir, f"x{x}-s{seed}")
    return len(open(path).read()) if os.path.exists(path) else 0


def _crashy_run(p: dict, seed: int) -> dict:
    before = attempts(p["marker_dir"], p["x"], seed)
    with open(os.path.join(p["marker_dir"], f"x{p['x']}-s{seed}"), "a") as f:
        f.write(".")                      # one character per attempt
    if p["mode"] == "always" or (p["mode"] == "once" and before == 0):
        os._exit(1)                       # the worker process dies mid-task
    if p["mode"] == "raise":
        raise RuntimeError("an error inside the experiment")
    return {"y": float(p["x"] ** 2 + seed), "pid": os.getpid()}


CRASHY = Experiment(
    name="test-crashy", question="?", reference="test", run=_crashy_run,
    params=(Param("x", int, default=[1, 2, 3]),
            Param("mode", str, default="never", choices=("never", "once", "always", "raise")),
            Param("marker_dir", str, default="/tmp")),
    seeds=2)
