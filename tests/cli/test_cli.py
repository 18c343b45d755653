"""The CLI through its real entry point: JSON shape, one-line errors, exit codes."""
import csv
import json
import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from petridish.cli.main import main
from petridish.lab.store import open_store

PETRIDISH = [sys.executable, "-m", "petridish.cli.main"]


def run_cli(capsys, *args):
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def test_list_shows_the_catalogue(capsys):
    rc, out, _ = run_cli(capsys, "list")
    assert rc == 0 and "linear-double-descent" in out


def test_run_json_is_one_document_with_the_documented_shape(capsys, store_dir):
    rc, out, err = run_cli(capsys, "run", "linear-double-descent", "--quick", "--json", "--store", store_dir,
                           "--set", "gamma=0.5,2", "--seeds", "2")
    assert rc == 0
    doc = json.loads(out)                        # the whole of stdout is one JSON document
    assert set(doc) >= {"run", "experiment", "cells"} and doc["experiment"] == "linear-double-descent"
    assert len(doc["cells"]) == 2 * 2 * 2        # gamma x ridge x seeds
    cell = doc["cells"][0]
    assert set(cell) == {"params", "seed", "status", "metrics"} and cell["status"] == "done"
    assert {"risk", "theory_risk"} <= set(cell["metrics"])
    rc, out2, _ = run_cli(capsys, "run", "linear-double-descent", "--quick", "--json", "--store", store_dir,
                          "--set", "gamma=0.5,2", "--seeds", "2")
    assert json.loads(out2)["run"] == doc["run"]  # the same sweep is the same run


@pytest.mark.parametrize("args, needle", [
    (["run", "nope"], "Unknown experiment 'nope'. Allowed:"),
    (["run", "linear-double-descent", "--set", "bogus=1"], "Unknown parameter 'bogus'"),
    (["run", "linear-double-descent", "--set", "n=abc"], "The 'n' parameter of experiment 'linear-double-descent' must be an int"),
    (["run", "linear-double-descent", "--set", "n=1"], "must be an int >= 2"),
    (["run", "linear-double-descent", "--set", "ridge=maybe"], "must be one of 'none', 'optimal'"),
    (["run", "linear-double-descent", "--set", "n"], "The '--set' option must be key=value"),
    (["run", "linear-double-descent", "--workers", "0"], "The '--workers' option must be an int >= 1"),
    (["run", "linear-double-descent", "--executor", "mpi"], "The '--executor' option must be one of"),
    (["run", "linear-double-descent", "--bogus"], "No such option: --bogus"),
    (["frobnicate"], "No such command"),
    (["bench", "nope"], "The 'NAME' argument of bench must be one of"),
    (["bench", "ensemble", "--models", "0"],
     "argument --models: must be an int >= 1. Got 0. (see 'petridish bench ensemble --help')"),
    (["bench", "ensemble", "--clock", "sundial"], "argument --clock: invalid choice: 'sundial'"),
])
def test_bad_input_gives_one_line_and_exit_2(capsys, store_dir, args, needle):
    rc, out, err = run_cli(capsys, *args, "--store", store_dir) if args[0] in ("run", "show") else run_cli(capsys, *args)
    assert rc == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
    assert "Traceback" not in err


def test_bench_help_lists_the_benchmarks_and_a_benchmark_shows_its_own_help(capsys):
    rc, out, _ = run_cli(capsys, "bench", "--help")
    assert rc == 0 and "Benchmarks: " in out and "ensemble" in out.split("Benchmarks: ")[1]
    rc, out, _ = run_cli(capsys, "bench", "ensemble", "--help")
    assert rc == 0 and out.startswith("usage: petridish bench ensemble") and "--models" in out


@pytest.mark.parametrize("url, needle", [
    ("postgresql+psycopg://bob:hunter2@127.0.0.1:1/db", "Connection refused"),      # nothing listens on port 1
    ("sqlite:////nonexistent/dir/runs.db", "unable to open database file"),
])
def test_a_store_that_cannot_be_opened_is_one_line_without_the_password(capsys, url, needle):
    rc, out, err = run_cli(capsys, "run", "linear-double-descent", "--quick", "--store", url)
    lines = err.strip().splitlines()
    shown = url.replace("hunter2", "***")
    assert rc == 2 and len(lines) == 1 and lines[0].startswith(f"error: Could not open the results store at {shown}: ")
    assert needle in lines[0] and "sqlalche.me" not in lines[0] and "hunter2" not in err, err


@pytest.mark.parametrize("command", [["runs"], ["show", "abc"], ["report", "abc"], ["export", "abc"]])
def test_reading_a_store_that_is_not_there_says_so_and_creates_nothing(capsys, tmp_path, command):
    missing = tmp_path / "typo"
    rc, out, err = run_cli(capsys, *command, "--store", str(missing))
    assert rc == 2 and err.count("\n") == 1 and f"There is no results store at {missing}" in err, err
    assert not missing.exists()                   # a read never makes an empty store where the user mistyped
    open_store(str(tmp_path / "empty"))           # a store that exists, without the run
    rc, out, err = run_cli(capsys, *command, "--store", str(tmp_path / "empty"))
    needle = "No runs in the store" if command == ["runs"] else "No run 'abc' in the store sqlite:///"
    assert rc == (0 if command == ["runs"] else 2) and err.count("\n") == 1 and needle in err, err


def test_debug_shows_a_traceback(store_dir):
    p = subprocess.run(PETRIDISH + ["--debug", "run", "nope", "--store", store_dir], capture_output=True, text=True)
    assert p.returncode != 0 and "Traceback" in p.stderr


def test_show_report_export(capsys, store_dir, tmp_path):
    rc, out, _ = run_cli(capsys, "run", "linear-double-descent", "--quick", "--json", "--store", store_dir,
                         "--set", "gamma=0.5,2,4")
    rid = json.loads(out)["run"]
    rc, out, _ = run_cli(capsys, "runs", "--store", store_dir)
    assert rid in out and "finished" in out
    rc, out, _ = run_cli(capsys, "show", rid[:6], "--store", store_dir)
    assert rc == 0 and "theory_risk" in out and "[" in out           # mean [lo, hi]
    rc, out, _ = run_cli(capsys, "show", rid, "--store", store_dir, "--json")
    rows = json.loads(out)["rows"]
    assert len(rows) == 6 and set(rows[0]["metrics"]["risk"]) == {"mean", "lo", "hi"}
    rc, out, _ = run_cli(capsys, "report", rid, "--store", store_dir, "--out", str(tmp_path / "rep"))
    files = sorted(os.listdir(tmp_path / "rep"))
    assert rc == 0 and [f.rsplit(".", 1)[1] for f in files] == ["html", "png"]
    page = (tmp_path / "rep" / files[0]).read_text()
    assert "data:image/png;base64," in page and "Hastie" in page and "torch" in page
    rc, out, _ = run_cli(capsys, "export", rid, "--store", store_dir, "--format", "csv", "--out", str(tmp_path / "c.csv"))
    rows = list(csv.DictReader(open(tmp_path / "c.csv")))
    assert len(rows) == 3 * 2 * 5 and {"gamma", "seed", "metric.risk"} <= set(rows[0])
    rc, out, _ = run_cli(capsys, "export", rid, "--store", store_dir, "--format", "parquet", "--out", str(tmp_path / "c.pq"))
    assert pq.read_table(tmp_path / "c.pq").num_rows == 30
