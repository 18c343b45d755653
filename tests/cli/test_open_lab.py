"""The open lab through the real CLI: a user's experiment file (and module:ATTR, and an
entry-point plug-in) runs exactly like a catalogue entry, on every executor; a fresh process
finds it again from the store; an edited file stops the run until the user chooses; and
`petridish new` writes an experiment that runs at once and whose test passes."""
from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
import textwrap

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "search"))
from ray_helpers import ray_session  # noqa: E402,F401

from petridish.cli.main import main  # noqa: E402
from petridish.lab.store import open_store  # noqa: E402

PETRIDISH = [sys.executable, "-m", "petridish.cli.main"]

USER_EXP = textwrap.dedent('''
    import os

    import numpy as np
    from helpers import squash               # a sibling module, importable as under `python user_exp.py`

    from petridish.lab import Analysis, Experiment, Param, report_intermediate


    def run(p, seed):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((64, 8))
        y = squash(x @ rng.standard_normal(8)) * p["scale"]
        report_intermediate(1, float(np.mean(y ** 2)), "loss")
        return {"loss": float(np.mean(y ** 2)), "curve": [float(v) for v in y[:4]], "pid": os.getpid()}


    def analyze(cells):
        loss = np.mean([c.metrics["loss"] for c in cells])
        return Analysis(findings=[f"mean loss {loss:.4f} over {len(cells)} cells"], values={"loss": float(loss)})


    EXPERIMENT = Experiment(
        name="user-exp", question="Does the loss grow with the scale?", reference="a test",
        params=(Param("scale", float, default=[0.5, 1.0, 2.0], quick=[0.5, 2.0], low=0.0, high=10.0),),
        run=run, analyze=analyze, seeds=3)
''')
HELPERS = "import numpy as np\n\n\ndef squash(z):\n    return np.tanh(z)\n"


def run_cli(capsys, *args):
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def write_user_exp(folder, text=USER_EXP):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "helpers.py").write_text(HELPERS)
    path = folder / "user_exp.py"
    path.write_text(text)
    return path


def without_pid(doc):
    return [(c["params"], c["seed"], c["status"], {k: v for k, v in c["metrics"].items() if k != "pid"})
            for c in doc["cells"]]


FRESH = textwrap.dedent('''
    import contextlib, io, json, sys
    from petridish.cli.main import main
    exp, store, rid, out = sys.argv[1:5]

    def cli(*args):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            rc = main(list(args))
        return rc, buf.getvalue()

    found = {"show": cli("show", rid, "--store", store, "--json"),
             "report": cli("report", rid, "--store", store, "--out", out),
             "export": cli("export", rid, "--store", store, "--format", "csv", "--out", out + "/cells.csv"),
             "search": cli("search", exp, "--metric", "loss", "--budget", "3", "--sampler", "random",
                           "--quick", "--store", store, "--json")}
    found["show-search"] = cli("show", json.loads(found["search"][1])["run"], "--store", store)
    print(json.dumps(found))
''')


def test_a_file_experiment_runs_on_every_executor_and_a_fresh_process_finds_it(capsys, tmp_path, ray_session):
    exp = write_user_exp(tmp_path / "code")
    docs = {}
    for label, extra in [("one", ["--workers", "1"]), ("two", ["--workers", "2"]), ("ray", ["--executor", "ray"])]:
        rc, out, err = run_cli(capsys, "run", exp, "--quick", "--json", "--store", tmp_path / label, *extra)
        assert rc == 0, err
        docs[label] = json.loads(out)
    assert len(docs["one"]["cells"]) == 2 * 3 and docs["one"]["analysis"]["findings"][0].startswith("mean loss")
    assert without_pid(docs["one"]) == without_pid(docs["two"]) == without_pid(docs["ray"])   # bitwise equal
    assert docs["one"]["run"] == docs["two"]["run"] == docs["ray"]["run"]
    pids = {k: {c["metrics"]["pid"] for c in d["cells"]} for k, d in docs.items()}
    assert pids["one"] == {os.getpid()} and os.getpid() not in pids["two"] | pids["ray"]   # other processes ran them
    prov = open_store(str(tmp_path / "one")).get_run(docs["one"]["run"]).provenance["source"]
    assert prov == {"module": prov["module"], "file": str(exp), "sha256": hashlib.sha256(exp.read_bytes()).hexdigest()}

    elsewhere = tmp_path / "elsewhere"                 # a new process, in another directory, knows nothing
    elsewhere.mkdir()
    p = subprocess.run([sys.executable, "-c", FRESH, str(exp), str(tmp_path / "one"), docs["one"]["run"],
                        str(tmp_path / "rep")], cwd=elsewhere, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    found = json.loads(p.stdout.strip().splitlines()[-1])
    assert {k: rc for k, (rc, _) in found.items()} == dict.fromkeys(found, 0), p.stderr
    show = json.loads(found["show"][1])
    assert show["experiment"] == "user-exp" and len(show["rows"]) == 2 and "loss" in show["rows"][0]["metrics"]
    assert sorted(f.rsplit(".", 1)[1] for f in os.listdir(tmp_path / "rep")) == ["csv", "html", "png"]
    rows = list(csv.DictReader(open(tmp_path / "rep" / "cells.csv")))
    assert len(rows) == 6 and {"scale", "seed", "metric.loss"} <= set(rows[0])
    search = json.loads(found["search"][1])
    assert search["experiment"] == "user-exp" and len(search["trials"]) == 3
    assert "user-exp" in found["show-search"][1]


PLUGIN = textwrap.dedent('''
    from petridish.lab import Experiment, Param

    def run(p, seed):
        return {"y": p["x"] ** 2 + seed}

    EXPERIMENT = Experiment(name="plug-exp", question="Is a plug-in a first-class experiment?", reference="a test",
                            params=(Param("x", int, default=[1, 2, 3], low=0),), run=run, seeds=2,
                            summary="a plug-in from an entry point")
''')


def test_a_plugin_declared_by_an_entry_point_is_listed_and_runs(tmp_path):
    site = tmp_path / "site"                           # a package "installed" on PYTHONPATH, with its metadata
    (site / "myplug-0.1.dist-info").mkdir(parents=True)
    (site / "myplug.py").write_text(PLUGIN)
    (site / "myplug-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: myplug\nVersion: 0.1\n")
    (site / "myplug-0.1.dist-info" / "entry_points.txt").write_text(
        "[petridish.experiments]\nmyplug = myplug:EXPERIMENT\n")
    env = {**os.environ, "PYTHONPATH": str(site)}
    listing = "from petridish.cli.main import main; main(['list']); print('---'); main(['list', '--json'])"
    p = subprocess.run([sys.executable, "-c", listing], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    text, doc = p.stdout.split("---\n")
    lines = {line.split()[0]: line for line in text.splitlines()}
    assert lines["plug-exp"].endswith("(plug-in: myplug 0.1)") and "plug-in" not in lines["linear-double-descent"]
    entries = {e["name"]: e for e in json.loads(doc)}
    assert entries["plug-exp"]["plugin"] is True and entries["plug-exp"]["origin"] == "myplug 0.1"
    assert entries["linear-double-descent"]["plugin"] is False
    p = subprocess.run(PETRIDISH + ["run", "plug-exp", "--json", "--workers", "2", "--store", str(tmp_path / "runs")],
                       env=env, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert p.returncode == 0, p.stderr
    cells = json.loads(p.stdout)["cells"]
    assert [(c["status"], c["metrics"]["y"]) for c in cells] == [("done", x * x + s) for x in (1, 2, 3) for s in (0, 1)]


def test_editing_the_file_after_a_run_stops_it_until_the_user_chooses(capsys, tmp_path):
    exp, store = write_user_exp(tmp_path / "code"), str(tmp_path / "runs")
    rc, out, _ = run_cli(capsys, "run", exp, "--quick", "--json", "--workers", "1", "--store", store)
    first = json.loads(out)
    sha1 = hashlib.sha256(exp.read_bytes()).hexdigest()
    exp.write_text(USER_EXP.replace('* p["scale"]', '* p["scale"] * 1.5'))
    rc, out, err = run_cli(capsys, "run", exp, "--quick", "--workers", "1", "--store", store)
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith(f"error: The source of experiment 'user-exp' ({exp}) changed since run {first['run']} "
                          "computed its cells. Pass --new-version to start a new run, or --continue-changed to keep "
                          "going with the change recorded in the run's provenance"), err
    rc, _, err = run_cli(capsys, "run", exp, "--quick", "--new-version", "--continue-changed", "--store", store)
    assert rc == 2 and "exclude each other" in err

    rc, out, err = run_cli(capsys, "run", exp, "--quick", "--json", "--workers", "1", "--store", store, "--new-version")
    assert rc == 0, err
    new = json.loads(out)
    st = open_store(store)
    sha2 = hashlib.sha256(exp.read_bytes()).hexdigest()
    assert new["run"] != first["run"] and not set(st.run_keys(new["run"])) & set(st.run_keys(first["run"]))
    assert [c["metrics"]["loss"] for c in new["cells"]] != [c["metrics"]["loss"] for c in first["cells"]]
    prov = st.get_run(new["run"]).provenance
    assert prov["source"]["sha256"] == sha2 and prov["source_version"] == sha2[:12]

    exp.write_text(USER_EXP.replace('* p["scale"]', '* p["scale"] * 3.0'))
    rc, out, err = run_cli(capsys, "run", exp, "--quick", "--json", "--workers", "1", "--store", store,
                           "--continue-changed")
    assert rc == 0, err
    cont = json.loads(out)
    assert cont["run"] == first["run"] and without_pid(cont) == without_pid(first)    # the old cells are kept
    log = open_store(store).get_run(first["run"]).provenance["source_changes"]
    assert [(c["from"], c["to"]) for c in log] == [(sha1, hashlib.sha256(exp.read_bytes()).hexdigest())]

    exp.rename(tmp_path / "moved.py")                   # the code is gone: show says so, export needs no code
    rc, out, err = run_cli(capsys, "show", first["run"], "--store", store)
    assert rc == 2 and err.strip() == (f"error: The experiment 'user-exp' of run {first['run']} was loaded from "
                                       f"{exp}, which no longer exists. Restore the file, or run the experiment "
                                       "again from where it is now.")
    rc, out, err = run_cli(capsys, "export", first["run"], "--store", store, "--out", tmp_path / "c.csv")
    assert rc == 0 and len(list(csv.DictReader(open(tmp_path / "c.csv")))) == 6


def test_a_module_attr_spec_runs_and_is_shown(capsys, tmp_path, monkeypatch):
    write_user_exp(tmp_path / "code")
    monkeypatch.chdir(tmp_path / "code")                # the current directory is searched for the module
    rc, out, err = run_cli(capsys, "run", "user_exp:EXPERIMENT", "--quick", "--json", "--workers", "1",
                           "--store", tmp_path / "runs")
    assert rc == 0, err
    rid = json.loads(out)["run"]
    assert open_store(str(tmp_path / "runs")).get_run(rid).provenance["source"]["module"] == "user_exp"
    rc, out, _ = run_cli(capsys, "show", rid, "--store", tmp_path / "runs")
    assert rc == 0 and "user-exp" in out and "mean loss" in out
    rc, _, err = run_cli(capsys, "run", "user_exp:NOPE", "--store", tmp_path / "runs")
    assert rc == 2 and err.strip() == ("error: No module-level NOPE in the module 'user_exp'. Add NOPE = "
                                       "Experiment(...) (`petridish new NAME` writes an example).")


def test_new_writes_an_experiment_that_runs_at_once_and_whose_test_passes(capsys, tmp_path):
    folder = tmp_path / "exps"
    rc, out, err = run_cli(capsys, "new", "ridge_study", "--dir", folder)
    assert rc == 0, err
    assert sorted(os.listdir(folder)) == ["ridge_study.py", "test_ridge_study.py"]
    rc, out, err = run_cli(capsys, "run", folder / "ridge_study.py", "--quick", "--json", "--workers", "1",
                           "--store", tmp_path / "runs")
    assert rc == 0, err
    doc = json.loads(out)
    assert len(doc["cells"]) == 3 * 3 and {c["status"] for c in doc["cells"]} == {"done"}
    assert [c["verdict"] for c in doc["analysis"]["claims"]] == ["supported", "supported"]
    rc, out, err = run_cli(capsys, "report", doc["run"], "--store", tmp_path / "runs", "--out", tmp_path / "rep")
    assert rc == 0 and sorted(f.rsplit(".", 1)[1] for f in os.listdir(tmp_path / "rep")) == ["html", "png"]
    for args, needle in [(["new", "ridge_study", "--dir", folder], "already exist; new never overwrites a file"),
                         (["new", "Ridge-Study"], "The 'NAME' argument of new must be a lower-case Python identifier"),
                         (["new", "double_descent"], "must not be the name of a known experiment ('double-descent'")]:
        rc, out, err = run_cli(capsys, *args)
        assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1 and needle in err, err
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_ridge_study.py"],
                       cwd=folder, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and "2 passed" in p.stdout, p.stdout + p.stderr
