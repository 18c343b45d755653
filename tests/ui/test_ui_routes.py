"""Every route of the dashboard and every error path, through TestClient over a real SQLite store."""
from __future__ import annotations

import datetime as dt
import html as html_lib
import io
import json
import re
import time
from pathlib import Path

import pytest

from conftest import GHOST
from petridish.lab.store import RunRecord, SQLStore

UI = Path(__file__).resolve().parents[2] / "src" / "petridish" / "ui"


def rows_of(html: str) -> list[str]:
    return re.findall(r'<tr data-run="([^"]+)" data-status="[a-z]+">', html)


def cells_of(html: str, run_id: str) -> list[str]:
    row = html.split(f'<tr data-run="{run_id}" ', 1)[1].split("</tr>", 1)[0]
    return [html_lib.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]


# ---------------------------------------------------------------------------------------- runs list

def test_runs_list_newest_first_with_counts(client, toy_store):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert rows_of(r.text) == [toy_store["b"], toy_store["a"], toy_store["ghost"]]
    # columns: checkbox, run, experiment, status, done, diverged, failed, total, progress, wall, created
    a, b, g = (cells_of(r.text, toy_store[k]) for k in ("a", "b", "ghost"))
    assert a[2:8] == ["ui-toy", "finished", "12", "0", "0", "12"]
    assert b[2:8] == ["ui-toy", "finished", "9", "0", "3", "12"]        # width 13 fails, 3 seeds
    assert g[2:8] == [GHOST, "interrupted", "1", "1", "0", "3"]
    assert "ghost&lt;b&gt;x&lt;/b&gt;" in r.text and "ghost<b>" not in r.text    # autoescaped
    assert 'id="total">3 runs' in r.text


def test_runs_list_filters(client, toy_store):
    assert rows_of(client.get("/?experiment=ui-toy").text) == [toy_store["b"], toy_store["a"]]
    assert rows_of(client.get("/", params={"experiment": GHOST}).text) == [toy_store["ghost"]]
    assert rows_of(client.get("/?status=interrupted").text) == [toy_store["ghost"]]
    assert rows_of(client.get("/?status=running").text) == []
    today = dt.date.today()
    assert rows_of(client.get(f"/?since={today}").text) == [toy_store["b"], toy_store["a"]]
    assert rows_of(client.get(f"/?until={today - dt.timedelta(days=1)}").text) == [toy_store["ghost"]]
    assert rows_of(client.get(f"/?since={today}&until={today}").text) == [toy_store["b"], toy_store["a"]]
    empty = client.get("/?experiment=nothing-like-it")
    assert empty.status_code == 200 and "No runs match these filters." in empty.text
    # the empty fields a filter form submits are no filter
    assert len(rows_of(client.get("/?experiment=&status=&since=&until=").text)) == 3


def test_runs_list_paginates(make_client, toy_store):
    c = make_client(page_size=2)
    first = c.get("/?experiment=")
    assert rows_of(first.text) == [toy_store["b"], toy_store["a"]] and "page 1 of 2" in first.text
    nxt = re.search(r'id="next" href="([^"]+)"', first.text).group(1).replace("&amp;", "&")
    second = c.get(nxt)
    assert rows_of(second.text) == [toy_store["ghost"]] and "page 2 of 2" in second.text
    assert 'id="next"' not in second.text and 'id="prev"' in second.text
    kept = c.get("/?experiment=ui-toy&page=1").text
    assert rows_of(kept) == [toy_store["b"], toy_store["a"]] and "page 1 of 1" in kept
    assert rows_of(c.get("/?page=9").text) == []


@pytest.mark.parametrize("query, message", [
    ("status=bogus", "The 'status' filter must be one of running, finished, interrupted. Got 'bogus'."),
    ("since=yesterday", "The 'since' filter must be a date YYYY-MM-DD. Got 'yesterday'."),
    ("until=2024-13-01", "The 'until' filter must be a date YYYY-MM-DD. Got '2024-13-01'."),
    ("page=0", "The 'page' parameter of / is invalid: Input should be greater than or equal to 1. Got '0'."),
    ("page=two", "The 'page' parameter of / is invalid"),
    ("experiment=" + "x" * 129, "The 'experiment' parameter of / is invalid: String should have at most 128"),
])
def test_runs_list_bad_filters_are_422_with_one_sentence(client, query, message):
    r = client.get("/?" + query)
    assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")
    assert message.replace("'", "&#39;") in r.text


# ---------------------------------------------------------------------------------------- a run

def test_run_page_has_figure_table_findings_config_provenance_downloads(client, toy_store):
    rid = toy_store["a"]
    html = client.get(f"/runs/{rid}").text
    assert f'<img id="figure" alt="figure of run {rid}" src="/runs/{rid}/figure.png?v=12">' in html
    assert "Does test error fall with width?" in html
    head = re.search(r'<table id="table".*?<thead><tr>(.*?)</tr>', html, re.S).group(1)
    assert re.findall(r"<th>(.*?)</th>", head) == ["width", "seeds", "test_error", "train_error"]   # scalars only
    body = re.search(r'<table id="table".*?<tbody>(.*?)</tbody>', html, re.S).group(1)
    assert body.count("<tr>") == 4 and re.search(r"<td>2</td><td>3</td><td>0\.\d+ \[0\.\d+, 0\.\d+\]</td>", body)
    assert '<td class="v-supported"><b>supported</b></td><td>test error falls from w = 2 to w = 128</td>' in html
    assert "12 cells done." in html                      # a free-text finding, beside the claims table
    assert html.count("test error falls from w = 2 to w = 128") == 1     # a claim's sentence is not repeated
    config = html_lib.unescape(re.search(r'<pre id="config">(.*?)</pre>', html, re.S).group(1))
    assert json.loads(config) == {"lr": 0.1, "sleep": 0.0, "width": [2, 8, 32, 128]}
    prov = dict(re.findall(r"<tr><th>([^<]+)</th><td>([^<]*)</td></tr>", html.split('id="provenance"')[1]))
    import torch
    assert prov["torch"] == torch.__version__ and "git_commit" in prov and prov["machine"]
    assert f'href="/runs/{rid}/cells.csv"' in html and f'href="/runs/{rid}/cells.parquet"' in html
    assert 'data-status="finished"' in html and "wall time" in html


def test_run_page_by_unique_prefix_and_failed_cells(client, toy_store):
    rid = toy_store["b"]
    html = client.get(f"/runs/{rid[:6]}").text
    assert f"run <code>{rid}</code>" in html
    assert "Failed cells (first 3)" in html and "unlucky width" in html
    assert '<b id="n-failed">3</b>' in html and '<b id="n-done">9</b>' in html


def test_run_of_an_experiment_installed_nowhere_is_shown_without_figure(client, toy_store):
    r = client.get(f"/runs/{toy_store['ghost']}")
    assert r.status_code == 200
    assert 'id="no-figure"' in r.text and 'id="figure"' not in r.text
    assert "is not installed here: no analysis." in r.text
    assert re.search(r"<td>1</td><td>1</td><td>1</td>", r.text)      # k=1, 1 seed, m=1 (the diverged cell is left out)
    f = client.get(f"/runs/{toy_store['ghost']}/figure.png")
    assert f.status_code == 404 and "is not installed here, so its figure cannot be drawn" in f.json()["detail"]


def test_a_failing_analysis_or_plot_is_reported_not_fatal(tmp_path, make_client):
    from petridish.lab.sweep import run_sweep
    from ui_toys import UI_TOY_BROKEN
    with pytest.raises(ZeroDivisionError):        # the sweep stores its cells, then its analysis fails
        run_sweep(UI_TOY_BROKEN, store=str(tmp_path / "b"), progress=False)
    c = make_client(store=str(tmp_path / "b"))
    rid = c.app.state.store.query_runs()[0][0].id
    html = c.get(f"/runs/{rid}").text
    assert "The analysis failed on these cells: ZeroDivisionError: the analysis divides by zero" in html
    assert '<td>2</td><td>1</td>' in html                     # the table is still there
    f = c.get(f"/runs/{rid}/figure.png")
    assert f.status_code == 500 and f.json()["detail"] == (
        f"The figure of run {rid} could not be drawn: the plot of 'ui-toy-broken' raised "
        "ZeroDivisionError: the analysis divides by zero")


@pytest.mark.parametrize("path, status, message", [
    ("/runs/0000aaaa", 404, "There is no run &#39;0000aaaa&#39; in this store"),
    ("/runs/abc", 404, "There is no run &#39;abc&#39;"),                      # prefixes need 4 characters
    ("/runs/a%20b", 422, "A run id is 1 to 64 letters, digits"),
    ("/runs/" + "a" * 65, 422, "A run id is 1 to 64 letters"),
    ("/nowhere", 404, "There is no page /nowhere."),
])
def test_bad_run_ids_are_404_or_422_pages(client, path, status, message):
    r = client.get(path)
    assert r.status_code == status and message in r.text and r.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize("suffix", ["figure.png", "cells.csv", "cells.parquet"])
def test_downloads_of_unknown_runs_are_json_404(client, suffix):
    r = client.get(f"/runs/0000aaaa/{suffix}")
    assert r.status_code == 404 and r.json() == {"detail": "There is no run '0000aaaa' in this store (a unique "
                                                           "prefix of at least 4 characters also works)."}


def test_figure_is_a_png_rendered_once_per_cell_count(client, toy_store):
    url = f"/runs/{toy_store['a']}/figure.png"
    t0 = time.perf_counter()
    r = client.get(url)
    first = time.perf_counter() - t0
    assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.content[:8] == b"\x89PNG\r\n\x1a\n"
    t0 = time.perf_counter()
    again = client.get(url)
    assert again.content == r.content and len(client.app.state.figures._png) == 1
    assert time.perf_counter() - t0 < first       # served from the cache


def test_figure_is_redrawn_when_a_cell_lands(tmp_path, make_client):
    from petridish.lab.experiment import Cell
    d = str(tmp_path / "grow")
    st = SQLStore(d)
    src = {"module": "ui_toys", "file": str(Path(__file__).with_name("ui_toys.py")), "sha256": None}
    st.create_run(RunRecord("9r0w00000000", "ui-toy", {"width": [2, 8], "lr": 0.1, "sleep": 0.0}, [0],
                            {"source": src}, "running", time.time()), ["c1", "c2"])
    st.put_cells([Cell("c1", "ui-toy", {"width": 2, "lr": 0.1, "sleep": 0.0}, 0, "done", {"test_error": 0.5})])
    c = make_client(store=d)
    one = c.get("/runs/9r0w00000000/figure.png")
    assert one.status_code == 200 and c.get("/runs/9r0w00000000/figure.png").content == one.content
    st.put_cells([Cell("c2", "ui-toy", {"width": 8, "lr": 0.1, "sleep": 0.0}, 0, "done", {"test_error": 0.2})])
    two = c.get("/runs/9r0w00000000/figure.png")
    assert two.status_code == 200 and two.content != one.content and len(c.app.state.figures._png) == 2
    st.close()


def test_csv_and_parquet_downloads(client, toy_store):
    import pyarrow.parquet as pq
    rid = toy_store["b"]
    r = client.get(f"/runs/{rid}/cells.csv")
    assert r.status_code == 200 and r.headers["content-disposition"] == f'attachment; filename="{rid}.csv"'
    lines = r.text.strip().splitlines()
    assert lines[0].startswith("run,key,seed,status,lr,sleep,width,metric.curve,metric.test_error") and len(lines) == 13
    assert sum(",failed," in ln for ln in lines) == 3
    p = client.get(f"/runs/{rid}/cells.parquet")
    t = pq.read_table(io.BytesIO(p.content))
    assert t.num_rows == 12 and t.column("status").to_pylist().count("failed") == 3


# ---------------------------------------------------------------------------------------- progress

def test_progress_json_of_a_finished_run(client, toy_store):
    j = client.get(f"/api/runs/{toy_store['a']}/progress").json()
    assert (j["status"], j["fraction"], j["eta_s"], j["steps"], j["version"]) == ("finished", 1.0, None, None, 12)
    assert j["counts"] == {"done": 12, "diverged": 0, "failed": 0, "total": 12, "pending": 0}
    lines = j["series"]["metrics"]["test_error"]
    assert j["series"]["x"] == "width" and len(lines) == 1
    assert [p[0] for p in lines[0]["points"]] == [2, 8, 32, 128]
    assert all(lo <= m <= hi for _x, m, lo, hi in lines[0]["points"])
    assert lines[0]["points"][0][1] > lines[0]["points"][-1][1]           # error falls with width
    assert j["table"]["header"] == ["width", "seeds", "test_error", "train_error"] and len(j["table"]["body"]) == 4
    assert j["wall_time_s"] > 0


def test_progress_of_a_running_sweep_uses_step_counts_and_gives_an_eta(tmp_path, make_client):
    d = str(tmp_path / "live")
    st = SQLStore(d)
    now = time.time()
    st.create_run(RunRecord("1ive00000000", "ui-toy", {"width": [1, 2]}, [0, 1],
                            {"progress": {"steps_done": 250, "steps_total": 1000, "cells_done": 1,
                                          "cells_total": 4, "updated": now}}, "running", now - 30), ["a", "b", "c", "d"])
    c = make_client(store=d)
    j = c.get("/api/runs/1ive/progress").json()
    assert j["steps"] == {"done": 250, "total": 1000} and j["fraction"] == 0.25
    assert 85 < j["eta_s"] < 100                   # 30 s for a quarter: about 90 s to go
    html = c.get("/runs/1ive00000000").text
    assert "250 / 1000 training steps" in html and "ETA ≈ 1:3" in html
    assert j["eta_from"] == "elapsed" and j["silent_s"] < 60
    # the sweep's own ETA (its session's rate), less the time since it wrote it
    st.update_run("1ive00000000", provenance={"progress": {"steps_done": 500, "steps_total": 1000,
                                                           "eta_s": 40.0, "updated": time.time() - 10}})
    j = c.get("/api/runs/1ive/progress").json()
    assert j["eta_from"] == "sweep" and 29 < j["eta_s"] <= 30 and j["fraction"] == 0.5 and 10 <= j["silent_s"] < 20
    st.update_run("1ive00000000", provenance={})   # no step counts: fraction in finished cells
    j = c.get("/api/runs/1ive/progress").json()
    assert j["fraction"] == 0.0 and j["eta_s"] is None and j["silent_s"] is None
    st.close()


def test_live_rows_of_the_runs_list(client, toy_store):
    a, g = toy_store["a"], toy_store["ghost"]
    j = client.get(f"/api/runs/live?ids={a},{g},0000aaaa,{a[:6]}").json()
    assert j == {"runs": {a: {"status": "finished", "counts": {"done": 12, "diverged": 0, "failed": 0, "total": 12,
                                                              "pending": 0}},
                          g: {"status": "interrupted", "counts": {"done": 1, "diverged": 1, "failed": 0, "total": 3,
                                                                 "pending": 1}}},
                 "missing": ["0000aaaa", a[:6]]}                     # exact ids only, as the page has them
    for q, m in (("ids=", "must name 1 to 50 runs"), ("ids=" + ",".join(f"r{i}" for i in range(51)), "Got 51."),
                 ("ids=a%20b", "A run id is 1 to 64"), ("", "Field required")):
        r = client.get("/api/runs/live?" + q)
        assert r.status_code == 422 and m in r.json()["detail"], (q, r.text)


def test_progress_errors(client):
    r = client.get("/api/runs/0000aaaa/progress")
    assert r.status_code == 404 and r.json()["detail"].startswith("There is no run '0000aaaa'")
    r = client.get("/api/runs/a%20b/progress")
    assert r.status_code == 422 and "A run id is 1 to 64" in r.json()["detail"]


# ---------------------------------------------------------------------------------------- compare

def test_compare_highlights_the_parameters_that_differ(client, toy_store):
    a, b = toy_store["a"], toy_store["b"]
    html = client.get(f"/compare?runs={a},{b}").text
    rows = dict(re.findall(r'<tr class="(differs|same)"><th>(\w+)</th>', html)[i][::-1] for i in range(4))
    assert rows == {"width": "differs", "lr": "differs", "sleep": "same", "seeds": "same"}
    assert f'data-runs="{a},{b}"' in html and "ui-toy · 2 runs" in html
    # repeated parameters (what the runs list's checkboxes send) work the same
    assert client.get(f"/compare?runs={a}&runs={b}").text == html


def test_compare_data_overlays_both_runs(client, toy_store):
    a, b = toy_store["a"], toy_store["b"]
    j = client.get(f"/api/compare?runs={a},{b}").json()
    assert j["runs"] == [a, b] and j["experiment"] == "ui-toy"
    lines = j["series"]["metrics"]["test_error"]
    assert [ln["label"] for ln in lines] == [a, b]
    assert [p[0] for p in lines[1]["points"]] == [2, 8, 32]                 # width 13 failed: no point
    assert j["counts"] == {a: {"done": 12}, b: {"done": 9, "failed": 3}}


@pytest.mark.parametrize("query, status, message", [
    ("runs={a}", 422, "The 'runs' parameter must name 2 to 8 runs, comma-separated"),
    ("runs={a},{a}", 422, "must name 2 to 8 runs"),
    ("runs=" + ",".join(f"r{i}" for i in range(9)), 422, "must name 2 to 8 runs"),
    ("", 422, "is invalid: Field required. Got nothing."),
    ("runs={a},0000aaaa,0000bbbb", 404, "There is no run '0000aaaa', '0000bbbb' in this store."),
    ("runs={a},{ghost}", 422, "Only runs of the same experiment can be compared. Got {a} (ui-toy), {ghost} (" + GHOST + ")."),
    ("runs={a},x%20y", 422, "A run id is 1 to 64"),
])
def test_compare_errors(client, toy_store, query, status, message):
    q, m = query.format(**toy_store), message.format(**toy_store)
    api = client.get("/api/compare?" + q)
    assert api.status_code == status and m in api.json()["detail"]
    page = client.get("/compare?" + q)
    assert page.status_code == status and m.replace("'", "&#39;").replace("<", "&lt;").replace(">", "&gt;") in page.text


# ---------------------------------------------------------------------------------------- security

def test_read_only_no_write_routes(client, toy_store):
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        r = client.request(method, f"/runs/{toy_store['a']}")
        assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"
        assert "The dashboard is read-only" in r.json()["detail"]
    assert client.head("/").status_code == 200 and client.head("/").content == b""
    store = client.app.state.store
    assert store.read_only and "mode=ro" in store.url
    with pytest.raises(Exception, match="(?i)readonly|read-only"):
        store.update_run(toy_store["a"], status="interrupted")


def test_security_headers_on_pages_errors_and_assets(client, toy_store):
    for path in ("/", f"/runs/{toy_store['a']}", "/runs/0000aaaa", "/static/app.css", f"/api/runs/{toy_store['a']}/progress"):
        h = client.get(path).headers
        assert h["content-security-policy"].startswith("default-src 'none'; script-src 'self'")
        assert (h["x-frame-options"], h["x-content-type-options"], h["referrer-policy"]) == ("DENY", "nosniff", "same-origin")


def test_foreign_host_header_is_refused_on_loopback(client):
    """DNS rebinding: a page on another site that resolves to 127.0.0.1 sends its own Host."""
    assert client.get("/", headers={"Host": "evil.example"}).status_code == 400
    assert client.get("/", headers={"Host": "localhost:8765"}).status_code == 200


def test_assets_are_served_from_the_package_and_nothing_from_elsewhere(client):
    for name, kind in (("app.css", "text/css"), ("chart.js", "javascript"), ("run.js", "javascript"),
                       ("compare.js", "javascript"), ("runs.js", "javascript")):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and kind in r.headers["content-type"]
    text = "".join(p.read_text() for p in (UI / "templates").glob("*.html")) + \
        "".join(p.read_text() for p in (UI / "static").glob("*"))
    assert re.findall(r"""(?:src|href)=["']?(?:https?:)?//""", text) == []
    assert re.findall(r"https?://(?!www\.w3\.org/2000/svg)", text) == []
    assert "<script>" not in text and " style=" not in text      # the CSP allows neither


# ---------------------------------------------------------------------------------------- settings and CLI

def test_settings_are_validated_in_one_line():
    from petridish.errors import PetridishError
    from petridish.ui import load_settings
    assert load_settings().host == "127.0.0.1"                       # loopback by default
    with pytest.raises(PetridishError, match=r"The 'port' setting of the dashboard is invalid: .*Got 70000"):
        load_settings(port=70000)
    with pytest.raises(PetridishError, match=r"The 'page_size' setting"):
        load_settings(page_size=0)


def test_cli_ui_without_a_store_is_one_line_and_exit_2(tmp_path, capsys):
    from petridish.cli.main import main
    assert main(["ui", "--store", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: There is no results store at ")
    assert not (tmp_path / "none").exists()
    assert main(["ui", "--store", str(tmp_path), "--port", "0"]) == 2
