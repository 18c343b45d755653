"""The experiment contract suite (petridish.lab.check, `petridish check`): a good tiny experiment
passes every check, and each deliberately broken one fails its check with its one-line reason."""
from __future__ import annotations

import dataclasses
import itertools
import json
import math
import textwrap

import numpy as np
import pytest

from petridish.errors import InvalidParameterError
from petridish.lab import Analysis, Experiment, Param, aggregate, check_experiment
from petridish.lab.check import compare, metrics_problem, partial_roles, pick_group


def _run(p, seed):
    """y = x·10 + seed, a curve, a string and a bool: every metric type the contract allows."""
    y = p["x"] * 10.0 + seed
    return {"y": y, "n": p["x"], "curve": [y, y / 2, math.nan], "arm": p["arm"], "small": y < 15,
            "bound": math.inf}


def _run_group(plist, seeds):
    # a different code path: y computed as a float32 sum rounds differently from run (≈ 1e-8 relative)
    out = []
    for p, s in zip(plist, seeds):
        m = _run(p, s)
        m["y"] = float(np.float32(p["x"]) * np.float32(10.0) + np.float32(s)) * (1 + 1e-8)
        out.append(m)
    return out


def _analyze(cells):
    rows = aggregate(cells, by=["x"], metrics=["y"])
    return Analysis([f"{len(rows)} rows"], {"means": [r["metrics"]["y"]["mean"] for r in rows]})


def _plot(cells, fig):
    ax = fig.add_subplot(1, 1, 1)
    done = [c for c in cells if c.status == "done"]
    ax.plot([c.params["x"] for c in done], [c.metrics["y"] for c in done], "o")


PARAMS = (Param("x", int, default=[1, 2, 3], quick=[1, 2], low=0, high=100),
          Param("arm", str, default=["a", "b"], choices=("a", "b")),
          Param("lr", float, default=0.1, low=1e-6, high=1.0),
          Param("flag", bool, default=False))

GOOD = Experiment(name="toy-good", question="q", reference="r", params=PARAMS, run=_run, run_group=_run_group,
                  group_by=("arm",), analyze=_analyze, plot=_plot, tiny={"arm": "a"}, seeds=2)


def _broken(**changes) -> Experiment:
    return dataclasses.replace(GOOD, **changes)


def test_a_good_experiment_passes_every_check():
    report = check_experiment(GOOD)
    assert report.ok, report.failures
    names = [r.name for r in report.results]
    assert names == ["deterministic", "run_group", "metrics", "params", "partial", "timing"]
    assert report.get("timing").skipped                                # opt-in
    group = report.get("run_group").message
    assert "group of 4 cells (2 seeds, 2 parameter sets)" in group, group    # x differs inside the group
    assert "largest relative difference 1.0e-08" in group, group
    assert "(1 done, 1 diverged, 1 failed, 1 missing)" in report.get("partial").message
    assert json.loads(json.dumps(report.to_json()))["ok"] is True


_counter = itertools.count()


def test_a_nondeterministic_run_fails_with_its_metric():
    exp = _broken(run=lambda p, s: dict(_run(p, s), y=float(next(_counter))))
    report = check_experiment(exp)
    first = report.get("deterministic")
    assert not first.ok
    assert first.message.startswith("run is not deterministic for cell {'x': 1} seed 0: metric 'y' ")
    assert first.message.endswith("(two runs, one thread)")
    assert "\n" not in first.message


def test_wall_metrics_are_exempt_from_equality():
    exp = _broken(run=lambda p, s: dict(_run(p, s), seconds=float(next(_counter))), run_group=None,
                  wall_metrics=("seconds",))
    assert check_experiment(exp).ok
    assert not check_experiment(dataclasses.replace(exp, wall_metrics=())).get("deterministic").ok


def test_run_group_differing_from_run_fails_with_the_cell_and_both_values():
    def off(plist, seeds):
        return [dict(m, y=m["y"] * 1.01) for m in _run_group(plist, seeds)]
    report = check_experiment(_broken(run_group=off))
    r = report.get("run_group")
    assert not r.ok
    assert r.message == ("run_group differs from run for cell {'x': 1} seed 0: metric 'y' 10 vs 10.1 "
                         "(rtol 0.0001)"), r.message
    assert report.failures == [r.message]
    # the same difference passes under a tolerance the experiment declares
    assert check_experiment(_broken(run_group=off, group_rtol=0.02)).get("run_group").ok


def test_run_group_with_the_wrong_count_or_a_curve_off_fails():
    short = check_experiment(_broken(run_group=lambda pl, s: _run_group(pl, s)[:1])).get("run_group")
    assert short.message == "run_group returned 1 results for a group of 4 cells"

    def bent(plist, seeds):
        return [dict(m, curve=m["curve"][:1] + [m["curve"][1] + 1.0, math.nan]) for m in _run_group(plist, seeds)]
    r = check_experiment(_broken(run_group=bent)).get("run_group")
    assert r.message == "run_group differs from run for cell {'x': 1} seed 0: metric 'curve'[1] 5 vs 6 (rtol 0.0001)"


@pytest.mark.parametrize("value, reason", [
    (np.float32(1.5), "metric 'bad' is a numpy.float32; the contract allows float, int, str, bool or a list of numbers"),
    ({"a": 1.0}, "metric 'bad' is a dict; the contract allows float, int, str, bool or a list of numbers"),
    ([1.0, None], "metric 'bad' is a list holding a NoneType; a curve holds only numbers"),
    ([[1.0, 2.0]], "metric 'bad' is a list holding a list; a curve holds only numbers"),
])
def test_non_serializable_metrics_fail_with_the_metric_and_its_type(value, reason):
    exp = _broken(run=lambda p, s: dict(_run(p, s), bad=value), run_group=None)
    r = check_experiment(exp).get("metrics")
    assert not r.ok
    assert r.message == f"metrics from run on cell {{'x': 1}} seed 0: {reason}"


def test_metrics_policy_allows_nan_and_inf_and_numpy_float64():
    assert metrics_problem({"a": math.nan, "b": [math.inf, 1, 2.5], "c": np.float64(0.5), "d": "s",
                            "diverged": False}) is None
    assert metrics_problem({"diverged": 1}) == "'diverged' is a int; it must be a bool"
    assert metrics_problem({1: 2.0}) == "key 1 is a int, not a str"
    assert metrics_problem([1.0]) == "a list, not a dict"


def test_compare_is_exact_for_ints_strings_and_bools_and_relative_for_floats():
    assert compare({"a": 1.0}, {"a": 1.0 + 1e-9}, rtol=1e-6) is None
    assert compare({"a": 1.0}, {"a": 1.0 + 1e-9}, rtol=0.0) == "metric 'a' 1 vs 1"
    assert compare({"n": 3}, {"n": 4}, rtol=0.5) == "metric 'n' 3 vs 4"
    assert compare({"s": True}, {"s": False}, rtol=0.5) == "metric 's' True vs False"
    assert compare({"a": math.nan}, {"a": math.nan}, rtol=0.0) is None
    assert compare({"a": math.nan}, {"a": 1.0}, rtol=0.5) == "metric 'a' nan vs 1"
    assert compare({"a": 1.0}, {}, rtol=0.0) == "metric 'a' from first run is missing from second run"
    # a curve's points compare on the curve's scale: 1e-9 off a point near 0 is fine at rtol 1e-6
    assert compare({"c": [1.0, 0.0]}, {"c": [1.0, 1e-9]}, rtol=1e-6) is None


def test_a_parameter_without_a_range_fails():
    lax = (Param("x", int, default=[1, 2], low=0), Param("arm", str, default="a", choices=("a", "b")),
           Param("lr", float, default=0.1))
    r = check_experiment(_broken(params=lax, tiny={})).get("params")
    assert r.message == ("parameter 'lr' declares no low, high or choices, so it accepts any number; "
                         "declare its valid range")


class _LaxParam(Param):
    """A declaration whose own validation lets bad values through."""

    def coerce(self, value, owner):
        return value


class _OffTemplateParam(Param):
    def coerce(self, value, owner):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidParameterError("bad x\nsee the docs")
        return value


def test_a_default_outside_its_own_declaration_fails():
    params = (Param("x", int, default=[1, 2], quick=[1, 200], low=0, high=100),) + PARAMS[1:]
    r = check_experiment(_broken(params=params, tiny={"x": [1, 2], "arm": "a"})).get("params")
    assert r.message == ("the --quick configuration is invalid: The 'x' parameter of experiment 'toy-good' must be "
                         "an int >= 0 and <= 100. Got 200.")


def test_a_parameter_that_accepts_a_bad_value_fails():
    params = (_LaxParam("x", int, default=[1, 2], low=0, high=100),) + PARAMS[1:]
    r = check_experiment(_broken(params=params)).get("params")
    assert r.message == "parameter 'x' accepts the bad value 'abc' (not a number)"


def test_a_parameter_error_off_the_template_fails():
    params = (_OffTemplateParam("x", int, default=[1, 2], low=0, high=100),) + PARAMS[1:]
    r = check_experiment(_broken(params=params)).get("params")
    assert r.message == ("parameter 'x' refuses 'abc' (not a number) with a message off the template "
                         "\"The 'x' parameter of ... must be ... Got ...\": bad x see the docs")


def test_the_parameter_probes_cover_type_range_and_choices():
    r = check_experiment(GOOD).get("params")
    # x: 3 wrong types + below + above; arm: 2 wrong types + a non-choice; lr: 2 + below + above; flag: 2
    assert r.message == "4 parameters refuse 14 bad values with the one-line error"


def test_analyze_crashing_on_a_partial_sweep_fails():
    def fragile(cells):                       # assumes every cell has metrics
        return Analysis([f"best y {min(c.metrics['y'] for c in cells)}"])
    r = check_experiment(_broken(analyze=fragile)).get("partial")
    assert r.message == ("analyze raised on a partial sweep (1 done, 1 diverged, 1 failed, 1 missing): "
                         "KeyError: 'y'")


def test_plot_crashing_on_a_partial_sweep_and_numpy_in_the_analysis_fail():
    def fragile_plot(cells, fig):
        fig.add_subplot(1, 1, 1).plot([c.metrics["y"] for c in cells])
    r = check_experiment(_broken(plot=fragile_plot)).get("partial")
    assert r.message == "plot raised on a partial sweep (1 done, 1 diverged, 1 failed, 1 missing): KeyError: 'y'"
    numpy_values = check_experiment(_broken(analyze=lambda cells: Analysis([], {"n": np.int64(3)}))).get("partial")
    assert numpy_values.message.startswith("analyze's result on the complete tiny sweep (4 cells) is not "
                                           "JSON-serializable: Object of type int64")


def test_a_crashing_run_and_an_invalid_tiny_fail_in_one_line():
    def boom(p, s):
        raise RuntimeError("no GPU\nsecond line")
    r = check_experiment(_broken(run=boom, run_group=None)).get("deterministic")
    assert r.message == "run raised on cell {'x': 1} seed 0: RuntimeError: no GPU second line"
    bad_tiny = check_experiment(_broken(tiny={"x": -1}))
    assert not bad_tiny.ok and [r.name for r in bad_tiny.results] == ["tiny"]
    assert bad_tiny.failures == ["the tiny configuration is invalid: The 'x' parameter of experiment 'toy-good' "
                                 "must be an int >= 0 and <= 100. Got -1."]


def test_check_experiment_takes_a_name_or_a_path_and_refuses_anything_else(tmp_path):
    from petridish.errors import PetridishError
    assert check_experiment(_write(tmp_path, "by_path")).experiment == "my-exp"
    with pytest.raises(PetridishError, match="^Unknown experiment 'no-such-experiment'"):
        check_experiment("no-such-experiment")
    with pytest.raises(PetridishError, match="^check_experiment takes an Experiment or its name. Got int.$"):
        check_experiment(3)


def test_the_group_mixes_seeds_and_parameters_and_the_partial_roles():
    grid = GOOD.grid(GOOD.config(GOOD.tiny, quick=True), [0, 1])
    members = pick_group(GOOD, grid)
    assert [(p["x"], s) for p, s in members] == [(1, 0), (2, 1), (1, 1), (2, 0)]
    assert pick_group(dataclasses.replace(GOOD, max_group=2), grid) == members[:2]
    assert partial_roles(4) == ["diverged", "failed", "done", "missing"]
    assert partial_roles(2) == ["diverged", "failed"]


def test_a_tiny_grid_that_sweeps_nothing_gets_a_third_seed_so_the_partial_sweep_keeps_a_done_cell():
    report = check_experiment(_broken(tiny={"x": 1, "arm": "a"}))
    assert report.ok, report.failures
    assert "(1 done, 1 diverged, 1 failed, 0 missing)" in report.get("partial").message
    assert "group of 3 cells (3 seeds, 1 parameter sets)" in report.get("run_group").message


def _slow_run(p, seed):
    import time
    time.sleep(p["sleep"])
    return {"y": 1.0}


SLOW = Experiment(name="toy-slow", question="q", reference="r", run=_slow_run, quick_seeds=1,
                  params=(Param("sleep", float, default=0.0, quick=0.3, low=0.0, high=10.0),),
                  tiny={"sleep": 0.0}, quick_budget_s=0.1)


def test_timing_is_opt_in_and_fails_over_the_budget():
    assert check_experiment(SLOW).ok                        # the tiny config does not sleep
    r = check_experiment(SLOW, timing=True).get("timing")     # --quick: 1 cell, in this process
    assert not r.ok and not r.skipped
    assert r.message.startswith("the --quick sweep took 0.") and r.message.endswith(
        "s, over its budget quick_budget_s=0.1 s (1 cells)")
    fits = check_experiment(dataclasses.replace(SLOW, quick_budget_s=30.0), timing=True).get("timing")
    assert fits.ok and "within 30 s" in fits.message


# ------------------------------------------------------------------------------------- the CLI

FILE_EXPERIMENT = '''
"""A user experiment in its own file."""
from petridish.lab import Analysis, Experiment, Param, aggregate


def run(p, seed):
    return {"y": p["x"] * 2.0 + seed OFFSET}


def analyze(cells):
    rows = aggregate(cells, by=["x"], metrics=["y"])
    return Analysis([f"{len(rows)} rows"])


def plot(cells, fig):
    fig.add_subplot(1, 1, 1).plot([c.metrics["y"] for c in cells if c.status == "done"])


EXPERIMENT = Experiment(name="my-exp", question="q", reference="r", run=run, analyze=analyze, plot=plot,
                        params=(Param("x", int, default=[1, 2, 3], low=0, high=10),), tiny={"x": [1, 2]})
'''


def _write(tmp_path, name: str, offset: str = "") -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(FILE_EXPERIMENT).replace("OFFSET", offset))
    return str(path)


def test_cli_check_a_file_passes_with_exit_0(tmp_path, capsys):
    from petridish.cli.main import main
    rc = main(["check", _write(tmp_path, "good_exp")])
    captured = capsys.readouterr()
    out = captured.out.splitlines()
    assert rc == 0, out
    assert captured.err == ""                       # it declares tiny=: no note
    assert [line.split()[0] for line in out[:-1]] == ["ok", "ok", "ok", "ok", "ok", "skip"]
    assert out[-1].startswith("my-exp: passes the contract (")


def test_cli_check_a_broken_file_exits_1_with_a_fail_line(tmp_path, capsys):
    from petridish.cli.main import main
    # a module-level counter makes every call differ: nondeterministic
    path = _write(tmp_path, "broken_exp", "+ next(_C)")
    with open(path, "a") as f:
        f.write("import itertools\n_C = itertools.count()\n")
    rc = main(["check", path])
    out = capsys.readouterr().out.splitlines()
    assert rc == 1
    assert out[0].startswith("FAIL deterministic run is not deterministic for cell {'x': 1} seed 0: metric 'y' 2 vs 3")
    assert out[-1].startswith("my-exp: FAILS 1 of 6 checks")


def test_cli_check_notes_a_missing_tiny_on_stderr(tmp_path, capsys):
    from petridish.cli.main import main
    path = tmp_path / "no_tiny.py"
    path.write_text(textwrap.dedent(FILE_EXPERIMENT).replace("OFFSET", "").replace(', tiny={"x": [1, 2]}', ""))
    assert main(["check", str(path)]) == 0
    err = capsys.readouterr().err
    assert err == "note: my-exp declares no tiny= configuration; checking its --quick one, which may take minutes\n"


def test_cli_check_timing_runs_the_quick_sweep(tmp_path, capsys):
    from petridish.cli.main import main
    path = tmp_path / "timed.py"        # --quick is one cell: the sweep runs in this process
    path.write_text(textwrap.dedent(FILE_EXPERIMENT).replace("OFFSET", "").replace(
        'tiny={"x": [1, 2]})', 'tiny={"x": [1, 2]}, quick_seeds=1, quick_budget_s=60.0)').replace(
        'default=[1, 2, 3]', 'default=[1, 2, 3], quick=2'))
    assert main(["check", str(path), "--timing"]) == 0
    timing = capsys.readouterr().out.splitlines()[-2]
    assert timing.startswith("ok   timing        the --quick sweep (1 cells) took ") and " s, within 60 s [" in timing


def test_the_experiment_petridish_new_writes_passes_the_contract(tmp_path, capsys):
    from petridish.cli.main import main
    assert main(["new", "my_study", "--dir", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["check", str(tmp_path / "my_study.py")]) == 0, capsys.readouterr().out


def test_cli_check_json_is_one_document(tmp_path, capsys):
    from petridish.cli.main import main
    rc = main(["check", _write(tmp_path, "json_exp"), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0 and doc["experiment"] == "my-exp" and doc["ok"] is True
    assert [c["check"] for c in doc["checks"]] == ["deterministic", "run_group", "metrics", "params", "partial",
                                                   "timing"]


def test_cli_check_an_unknown_experiment_exits_2_with_one_line(capsys):
    from petridish.cli.main import main
    assert main(["check", "no-such-experiment"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: Unknown experiment 'no-such-experiment'") and "\n" not in err
