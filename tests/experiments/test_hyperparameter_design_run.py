"""`petridish run hyperparameter-design --quick --json --report`: the acceptance command, its
figure and report, and the phenomenon on the quick configuration (5 repetitions per strategy):
adaptive search reaches the grid's best within tolerance with less compute than the grid."""
import json
import numpy as np

from petridish.cli.main import main
from petridish.experiments import hyperparameter_design as hd


def test_quick_run_json_figure_report_and_the_saving(tmp_path, capsys):
    out_dir = tmp_path / "reports"
    rc = main(["run", "hyperparameter-design", "--quick", "--json", "--store", str(tmp_path / "runs"),
               "--report", "--out", str(out_dir)])
    doc = json.loads(capsys.readouterr().out)          # --json: exactly one JSON document on stdout
    assert rc == 0 and doc["experiment"] == "hyperparameter-design"
    cells = doc["cells"]
    assert len(cells) == 4 * 5 and all(c["status"] == "done" for c in cells)
    values = doc["analysis"]["values"]
    for s in hd.STRATEGIES:
        v = values[s]
        assert v["reps"] == 5 and v["reached"] == 5       # CIs over 5 repetitions, all within tol
        f = v["fraction_to_tol"]
        assert 0 < f["lo"] <= f["geomean"] <= f["hi"]
    # the signature, with margin: TPE and TPE + Hyperband need at most 3/4 of the compute the
    # randomly ordered grid needs to get within tol of its best (measured 0.40 and 0.32)
    assert values["saving_vs_grid"]["tpe"] < 0.75
    assert values["saving_vs_grid"]["tpe-hyperband"] < 0.75
    assert any("cheapest strategy" in f for f in doc["analysis"]["findings"])
    png, html = list(out_dir.glob("hyperparameter-design-*.png")), list(out_dir.glob("hyperparameter-design-*.html"))
    assert len(png) == 1 and png[0].stat().st_size > 20_000 and len(html) == 1
    assert "grid&#39;s best" in html[0].read_text() or "grid's best" in html[0].read_text()


def test_hyperband_repetitions_are_reproducible():
    # Hyperband buckets trials by a hash of the study name: with Optuna's random default
    # name, a seed's repetition changed from run to run (seed 0 here: 48 trials, then 37)
    p = dict(hd.EXPERIMENT.config(quick=True), strategy="tpe-hyperband")   # grid cached by the test above
    first = [hd.run(p, s) for s in range(5)]
    again = [hd.run(p, s) for s in range(5)]
    np.testing.assert_array_equal([r["best_curve"] for r in first], [r["best_curve"] for r in again])
    assert [r["trials"] for r in first] == [r["trials"] for r in again]
