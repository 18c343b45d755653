"""lab.source and lab.source_guard: experiments loaded from a path, a package or module:ATTR,
their recorded source, finding them again from a stored run, and the source-changed guard."""
from __future__ import annotations

import hashlib
import pickle
import sys
import textwrap

import pytest

from petridish.errors import PetridishError
from petridish.lab.experiment import Experiment
from petridish.lab.source import experiment_for, is_builtin, load_experiment, source_info
from petridish.lab.store import MemoryStore, RunRecord
from petridish.lab.sweep import run_sweep

EXP = textwrap.dedent('''
    from petridish.lab import Experiment, Param

    def run(p, seed):
        return {"y": p["x"] * SCALE + seed}

    SCALE = 2.0
    EXPERIMENT = Experiment(name="src-exp", question="q", reference="r",
                            params=(Param("x", float, default=[1.0, 2.0]),), run=run, seeds=2)
''')


def write(path, text=EXP):
    path.write_text(text)
    return path


def one_line_error(fn, needle):
    with pytest.raises(PetridishError) as e:
        fn()
    msg = str(e.value)
    assert "\n" not in msg and needle in msg, msg
    return msg


def test_a_file_a_package_and_module_attr_load_the_experiment(tmp_path, monkeypatch):
    f = write(tmp_path / "my_exp.py")
    exp = load_experiment(str(f))
    assert isinstance(exp, Experiment) and exp.name == "src-exp" and exp.run({"x": 1.0}, 1) == {"y": 3.0}
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    write(pkg / "core.py", EXP.replace("src-exp", "pkg-exp"))
    (pkg / "__init__.py").write_text("from .core import EXPERIMENT\nOTHER = EXPERIMENT\n")
    assert load_experiment(str(pkg)).name == "pkg-exp"
    monkeypatch.chdir(tmp_path)                          # module:ATTR is also looked up in the cwd
    assert load_experiment("mypkg.core:EXPERIMENT").name == "pkg-exp"
    assert load_experiment("mypkg:OTHER").run({"x": 2.0}, 0) == {"y": 4.0}
    assert load_experiment("linear-double-descent").name == "linear-double-descent"


def test_bad_specs_give_one_line_errors(tmp_path):
    write(tmp_path / "none.py", "X = 1\n")
    write(tmp_path / "wrong.py", "EXPERIMENT = 42\n")
    (tmp_path / "notpkg").mkdir()
    one_line_error(lambda: load_experiment(str(tmp_path / "missing.py")), "does not exist")
    one_line_error(lambda: load_experiment(str(tmp_path / "none.py")),
                   "No module-level EXPERIMENT in " + str(tmp_path / "none.py"))
    one_line_error(lambda: load_experiment(str(tmp_path / "wrong.py")),
                   "EXPERIMENT in " + str(tmp_path / "wrong.py") + " must be a petridish.lab.Experiment. Got int.")
    one_line_error(lambda: load_experiment(str(tmp_path / "notpkg")), "is not a Python package")
    one_line_error(lambda: load_experiment("no_such_module_xyz:EXPERIMENT"), "Cannot import the module")
    one_line_error(lambda: load_experiment("nope"), "Unknown experiment 'nope'. Allowed:")


def test_source_info_hashes_the_file_or_every_file_of_a_package(tmp_path):
    f = write(tmp_path / "my_exp.py")
    info = source_info(load_experiment(str(f)))
    assert info["file"] == str(f) and info["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
    assert not is_builtin(info) and info["module"].startswith("_petridish_user_my_exp_")
    pkg = tmp_path / "hashpkg"
    pkg.mkdir()
    write(pkg / "core.py")
    (pkg / "__init__.py").write_text("from .core import EXPERIMENT\n")
    before = source_info(load_experiment(str(pkg)))
    (pkg / "core.py").write_text(EXP + "\n# an edit in a submodule\n")
    after = source_info(load_experiment(str(pkg)))
    assert before["file"] == after["file"] == str(pkg) and before["sha256"] != after["sha256"]
    cat = source_info(load_experiment("linear-double-descent"))
    assert is_builtin(cat) and cat["module"] == "petridish.experiments.linear_double_descent"


def test_a_file_experiment_pickles_as_a_reference_and_refuses_changed_code(tmp_path):
    f = write(tmp_path / "pick_exp.py")
    exp = load_experiment(str(f))
    blob = pickle.dumps(exp)
    assert str(f).encode() in blob                       # a reference to the file, not its bytecode
    name = source_info(exp)["module"]
    del sys.modules[name]                                # as in a fresh worker process
    back = pickle.loads(blob)
    assert back.run({"x": 1.0}, 0) == {"y": 2.0} and back.name == exp.name
    f.write_text(EXP.replace("SCALE = 2.0", "SCALE = 5.0"))
    del sys.modules[name]
    with pytest.raises(PetridishError, match="changed while the run was going"):
        pickle.loads(blob)


def test_a_module_experiment_pickles_with_its_root_and_refuses_changed_code(tmp_path, monkeypatch):
    code = tmp_path / "code"
    code.mkdir()
    f = write(code / "modpick.py")
    monkeypatch.chdir(code)
    exp = load_experiment("modpick:EXPERIMENT")
    blob = pickle.dumps(exp)
    monkeypatch.chdir(tmp_path)                          # a fresh worker: elsewhere, module not imported
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(code)])
    del sys.modules["modpick"]
    assert pickle.loads(blob).run({"x": 1.0}, 1) == {"y": 3.0}   # found again through the recorded root
    f.write_text(EXP.replace("SCALE = 2.0", "SCALE = 5.0"))
    del sys.modules["modpick"]
    with pytest.raises(PetridishError, match="changed while the run was going"):
        pickle.loads(blob)


def test_experiment_for_finds_a_stored_run_by_its_source_or_its_name(tmp_path):
    f = write(tmp_path / "found.py")
    rec = RunRecord("ab12cd34ef56", "src-exp", {}, [0], {"source": source_info(load_experiment(str(f)))})
    assert experiment_for(rec).run({"x": 1.0}, 0) == {"y": 2.0}
    f.unlink()
    one_line_error(lambda: experiment_for(rec), f"The experiment 'src-exp' of run ab12cd34ef56 was loaded from {f}, "
                                                "which no longer exists.")
    assert experiment_for(RunRecord("r1", "linear-double-descent", {}, [0], {})).name == "linear-double-descent"
    one_line_error(lambda: experiment_for(RunRecord("r2", "gone-exp", {}, [0], {})), "cannot be found")


def test_changed_source_stops_unless_a_new_version_or_continue_is_chosen(tmp_path):
    f = write(tmp_path / "guarded.py")
    st = MemoryStore()
    first = run_sweep(str(f), store=st, progress=False)
    sha1 = st.get_run(first.run_id).provenance["source"]["sha256"]
    f.write_text(EXP.replace("SCALE = 2.0", "SCALE = 3.0"))
    one_line_error(lambda: run_sweep(str(f), store=st, progress=False),
                   f"changed since run {first.run_id} computed its cells. Pass --new-version")
    cont = run_sweep(str(f), store=st, progress=False, source_changed="continue")
    assert cont.run_id == first.run_id and cont.computed == 0      # the old cells are kept ...
    log = st.get_run(cont.run_id).provenance["source_changes"]      # ... and the change is recorded
    sha2 = hashlib.sha256(f.read_bytes()).hexdigest()
    assert [(c["from"], c["to"]) for c in log] == [(sha1, sha2)] and log[0]["at"] > 0
    again = run_sweep(str(f), store=st, progress=False)             # the same code again: no question
    assert again.run_id == first.run_id and st.get_run(again.run_id).provenance["source_changes"] == log
    f.write_text(EXP.replace("SCALE = 2.0", "SCALE = 4.0"))
    new = run_sweep(str(f), store=st, progress=False, source_changed="new-version")
    assert new.run_id != first.run_id and new.computed == len(new.cells) == 4
    assert not {c.key for c in new.cells} & {c.key for c in first.cells}
    assert [c.metrics["y"] for c in new.cells] == [4.0, 5.0, 8.0, 9.0]
    assert st.get_run(new.run_id).provenance["source_version"] == hashlib.sha256(f.read_bytes()).hexdigest()[:12]
    resumed = run_sweep(str(f), store=st, progress=False)           # the new version is found again
    assert resumed.run_id == new.run_id and resumed.computed == 0
    with pytest.raises(PetridishError, match="The 'source_changed' parameter of run_sweep must be one of"):
        run_sweep(str(f), store=st, progress=False, source_changed="maybe")


def test_the_catalogue_is_versioned_by_version_not_by_its_source():
    st = MemoryStore()
    res = run_sweep("linear-double-descent", quick=True, seeds=2, overrides={"gamma": 0.5, "n": 40},
                    store=st, progress=False, source_changed="new-version")
    plain = run_sweep("linear-double-descent", quick=True, seeds=2, overrides={"gamma": 0.5, "n": 40},
                      store="memory", progress=False)
    assert res.run_id == plain.run_id and [c.key for c in res.cells] == [c.key for c in plain.cells]
    assert "source_version" not in st.get_run(res.run_id).provenance


COPY = textwrap.dedent('''
    import dataclasses
    from petridish.experiments.linear_double_descent import EXPERIMENT as CATALOGUE

    def run(p, seed):                  # an "improved" copy: same name, same parameters, other numbers
        m = dict(CATALOGUE.run(p, seed))
        return {**m, "risk": m["risk"] + 1.0}

    EXPERIMENT = dataclasses.replace(CATALOGUE, run=run, run_group=None)
''')


def test_a_copy_under_a_catalogue_name_never_shares_cells_with_the_catalogue(tmp_path):
    over = {"gamma": 0.5, "n": 40}
    copy = write(tmp_path / "ldd_copy.py", COPY)
    st = MemoryStore()
    mine = run_sweep(str(copy), quick=True, seeds=2, overrides=over, store=st, progress=False)
    one_line_error(lambda: run_sweep("linear-double-descent", quick=True, seeds=2, overrides=over, store=st,
                                     progress=False),
                   f"The cells of experiment 'linear-double-descent' that this run would reuse were computed in run "
                   f"{mine.run_id} by other code ({copy}).")
    st = MemoryStore()
    cat = run_sweep("linear-double-descent", quick=True, seeds=2, overrides=over, store=st, progress=False)
    one_line_error(lambda: run_sweep(str(copy), quick=True, seeds=2, overrides=over, store=st, progress=False),
                   f"changed since run {cat.run_id} computed its cells")
