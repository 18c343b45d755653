"""`petridish search` after the user edits the experiment's file: like `petridish run`
(``lab.source_guard``), it stops with one line until the user chooses --new-version (a new
study and run with their own cells) or --continue-changed (the change is recorded in the
run's provenance), both for the study's own trials and for cells a trial takes from a sweep."""
from __future__ import annotations

import hashlib
import json
import textwrap

from petridish.cli.main import main
from petridish.lab.store import open_store
from petridish.lab.sweep import run_sweep

USER_EXP = textwrap.dedent('''
    from petridish.lab import Experiment, Param


    def run(p, seed):
        return {"loss": (p["scale"] - 1.0) ** 2 + 0.01 * seed}


    EXPERIMENT = Experiment(
        name="user-search-exp", question="Which scale is best?", reference="a test",
        params=(Param("scale", float, default=[0.5, 1.0, 2.0], low=0.0, high=10.0),),
        run=run, seeds=1)
''')
SEARCH = ["--metric", "loss", "--sampler", "grid", "--budget", "3", "--workers", "1", "--json"]


def cli(capsys, *args):
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def edit(path, factor):
    path.write_text(USER_EXP.replace('+ 0.01 * seed', f'+ 0.01 * seed + {factor}'))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_edited_file_stops_a_resumed_search_until_the_user_chooses(capsys, tmp_path):
    exp, store = tmp_path / "user_search.py", str(tmp_path / "runs")
    exp.write_text(USER_EXP)
    sha1 = hashlib.sha256(exp.read_bytes()).hexdigest()
    rc, out, err = cli(capsys, "search", exp, *SEARCH, "--store", store)
    assert rc == 0, err
    first = json.loads(out)
    assert first["computed"] == 3 and first["study"].startswith("user-search-exp:loss:")

    sha2 = edit(exp, 1.0)
    rc, out, err = cli(capsys, "search", exp, *SEARCH, "--store", store)
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith(f"error: The source of experiment 'user-search-exp' ({exp}) changed since run "
                          f"{first['run']} computed its cells. Pass --new-version to start a new run, or "
                          "--continue-changed to keep going"), err
    assert "(search: source_changed=" in err
    assert open_store(store).get_run(first["run"]).provenance["source"]["sha256"] == sha1   # left as it was
    rc, _, err = cli(capsys, "search", exp, *SEARCH, "--store", store, "--new-version", "--continue-changed")
    assert rc == 2 and "exclude each other" in err

    # --new-version: a new study and run, with cells of their own computed by the new code
    rc, out, err = cli(capsys, "search", exp, *SEARCH, "--store", store, "--new-version")
    assert rc == 0, err
    new = json.loads(out)
    assert new["run"] != first["run"] and new["study"].startswith(f"user-search-exp@{sha2[:12]}:loss:")
    assert new["computed"] == 3 and new["best_value"] == first["best_value"] + 1.0
    st = open_store(store)
    assert not set(st.run_keys(new["run"])) & set(st.run_keys(first["run"]))
    prov = st.get_run(new["run"]).provenance
    assert prov["source"]["sha256"] == sha2 and prov["source_version"] == sha2[:12]
    # the same code later finds its pinned study again without the flag
    rc, out, err = cli(capsys, "search", exp, *SEARCH, "--store", store)
    assert rc == 0, err
    again = json.loads(out)
    assert (again["run"], again["study"], again["computed"]) == (new["run"], new["study"], 0)

    # --continue-changed: the first study goes on with its old cells, the change recorded
    sha3 = edit(exp, 3.0)
    rc, out, err = cli(capsys, "search", exp, *SEARCH, "--store", store, "--continue-changed")
    assert rc == 0, err
    cont = json.loads(out)
    assert (cont["run"], cont["study"], cont["computed"]) == (first["run"], first["study"], 0)
    assert cont["best_value"] == first["best_value"]                                  # the old cells are kept
    prov = open_store(store).get_run(first["run"]).provenance
    assert [(c["from"], c["to"]) for c in prov["source_changes"]] == [(sha1, sha3)]
    assert prov["source"]["sha256"] == sha3


def test_a_trial_does_not_silently_take_a_sweep_cell_computed_by_old_code(capsys, tmp_path):
    exp, store = tmp_path / "user_search.py", str(tmp_path / "runs")
    exp.write_text(USER_EXP)
    sha1 = hashlib.sha256(exp.read_bytes()).hexdigest()
    sweep = run_sweep(str(exp), seeds=[0], store=store, progress=False, workers=1)
    sha2 = edit(exp, 1.0)
    rc, out, err = cli(capsys, "search", exp, *SEARCH, "--store", store)
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith(f"error: The source of experiment 'user-search-exp' ({exp}) changed since run "
                          f"{sweep.run_id} computed its cells."), err

    rc, out, err = cli(capsys, "search", exp, *SEARCH, "--store", store, "--continue-changed")
    assert rc == 0, err
    cont = json.loads(out)
    assert cont["computed"] == 0 and cont["best_value"] == 0.0                       # the sweep's cells
    log = open_store(store).get_run(cont["run"]).provenance["source_changes"]
    assert [(c["from"], c["to"], c["cells_of"]) for c in log] == [(sha1, sha2, sweep.run_id)]   # once, not per trial

    rc, out, err = cli(capsys, "search", exp, *SEARCH, "--store", store, "--new-version")
    assert rc == 0, err
    new = json.loads(out)
    assert new["run"] != cont["run"] and new["computed"] == 3 and new["best_value"] == 1.0
