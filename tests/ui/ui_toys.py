"""A tiny experiment for the dashboard's tests: test error falls with width (and with lr), three
seeds, a claim with a verdict, its own figure. ``sleep`` slows each cell for live-progress tests."""
import math
import time

from petridish.lab import Experiment, Param
from petridish.lab.claims import Claim
from petridish.lab.experiment import Analysis
from petridish.lab.stats import mean_ci


def _run(p, seed):
    if p["sleep"]:
        time.sleep(p["sleep"])
    if p["width"] == 13:
        raise RuntimeError("unlucky width")
    noise = ((seed * 7919 + p["width"] * 31) % 17) / 170.0
    err = 1.0 / math.sqrt(p["width"]) / (1 + p["lr"]) + noise
    return {"test_error": err, "train_error": err / 2, "curve": [err * (1 + 1 / (t + 1)) for t in range(5)]}


def _analyze(cells):
    ok = [c for c in cells if c.status == "done"]
    lo_w = min(c.params["width"] for c in ok)
    hi_w = max(c.params["width"] for c in ok)
    gaps = [a.metrics["test_error"] - b.metrics["test_error"] for a in ok for b in ok
            if a.params["width"] == lo_w and b.params["width"] == hi_w and a.seed == b.seed
            and a.params["lr"] == b.params["lr"]]
    m, lo, hi = mean_ci(gaps)
    return Analysis(claims=[Claim(f"test error falls from w = {lo_w} to w = {hi_w}", m if gaps else None,
                                  (lo, hi) if gaps else None, test="seed-paired t", effect="error drop")],
                    findings=[f"{len(ok)} cells done."])


def _plot(cells, fig):
    ax = fig.add_subplot(1, 1, 1)
    ok = [c for c in cells if c.status == "done"]
    ax.plot([c.params["width"] for c in ok], [c.metrics["test_error"] for c in ok], "o")
    ax.set_xscale("log")
    ax.set_xlabel("width")
    ax.set_ylabel("test error")


UI_TOY = Experiment(name="ui-toy", question="Does test error fall with width?", reference="petridish tests",
                    params=(Param("width", int, default=[2, 8, 32, 128], low=1),
                            Param("lr", float, default=0.1, low=0),
                            Param("sleep", float, default=0.0, low=0)),
                    run=_run, seeds=3, analyze=_analyze, plot=_plot, bounds={"test_error": (0, 1)})


def _broken(cells, *_fig):
    raise ZeroDivisionError("the analysis divides by zero")


UI_TOY_BROKEN = Experiment(name="ui-toy-broken", question="q", reference="r",
                           params=(Param("width", int, default=[2, 4], low=1), Param("lr", float, default=0.1),
                                   Param("sleep", float, default=0.0)),
                           run=_run, seeds=1, analyze=_broken, plot=_broken)
