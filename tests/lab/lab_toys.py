"""Tiny experiments for the lab's own tests (importable by spawned workers via sys.path)."""
import os
import time

from petridish.lab import Experiment, Param


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
