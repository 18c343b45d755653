"""A toy that trains in steps and reports them through ``petridish.steps``, for the progress tests
(importable by spawned workers via sys.path; Ray tests ship it by value)."""
import os
import time

from petridish import steps
from petridish.lab import Experiment, Param


def _train(p, seed):
    """``p["steps"]`` steps of ``p["pause"]`` seconds each; one ``advance`` per step."""
    steps.expect(p["steps"])
    for _ in range(p["steps"]):
        time.sleep(p["pause"])
        steps.advance()
    return {"y": p["x"] * 10 + seed, "pid": os.getpid(), "end": time.time()}


def _run_group(plist, seeds):
    """One 'ensemble': the group's steps are expected up front, then trained together."""
    n = max(p["steps"] for p in plist)
    steps.expect(n)
    for _ in range(n):
        time.sleep(plist[0]["pause"])
        steps.advance()
    end = time.time()
    return [{"y": p["x"] * 10 + s, "pid": os.getpid(), "end": end, "grouped": len(plist)}
            for p, s in zip(plist, seeds)]


STEPPY = Experiment(name="toy-steppy", question="q", reference="r",
                    params=(Param("x", int, default=[1, 2], low=0), Param("steps", int, default=30, low=1),
                            Param("pause", float, default=0.02, low=0),
                            Param("tag", str, default=["a", "b"], choices=("a", "b"))),
                    run=_train, run_group=_run_group, group_by=("tag",), seeds=1)
