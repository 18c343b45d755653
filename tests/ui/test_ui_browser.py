"""The dashboard in a real headless Chromium (Debian's, through Playwright), served by
`petridish ui` in a subprocess over a SQLite store: the runs list, a run page with its figure,
live progress of a sweep running in a background thread (the counts change without a reload),
and a comparison of two runs. Screenshots go to tmp_path, and to docs/ when
PETRIDISH_UI_SCREENSHOTS names a folder (`PETRIDISH_UI_SCREENSHOTS=docs pytest tests/ui`)."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from petridish.lab.store import SQLStore
from petridish.lab.sweep import run_sweep
from ui_toys import UI_TOY

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SRC = str(Path(__file__).resolve().parents[2] / "src")
LIVE = {"width": [2, 4, 8, 16, 32, 64, 128, 256], "sleep": 0.3}      # 24 cells of 0.3 s: ~7 s


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Dashboard:
    """`petridish ui --store DIR` in its own process group on 127.0.0.1:<free port>."""

    def __init__(self, store: str, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": SRC, "PETRIDISH_UI_POLL_S": "0.4"}
        for k in [k for k in env if k.lower().endswith("_proxy")]:
            env.pop(k)
        self.log = open(log, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "petridish.cli.main", "ui", "--store", store,
                                      "--port", str(self.port)], env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"petridish ui exited with {self.proc.returncode}: {log.read_text()}"
            try:
                r = httpx.get(self.url + "/", timeout=1, trust_env=False)
                if r.status_code == 200:
                    assert "server" not in r.headers and r.headers["x-frame-options"] == "DENY"
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError("petridish ui did not answer within 60 s")

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.log.close()


def wait_until(page, js: str, timeout: float = 20.0) -> None:
    """Poll a JS expression until true (page.evaluate goes through the DevTools protocol; the
    page's CSP, which forbids eval, would block Playwright's own wait_for_function polling)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(js):
        assert time.monotonic() < deadline, f"not true within {timeout} s: {js}"
        time.sleep(0.05)


def keep(tmp_path: Path, name: str) -> None:
    folder = os.environ.get("PETRIDISH_UI_SCREENSHOTS")
    if folder:
        shutil.copy(tmp_path / name, Path(folder) / name)


@pytest.mark.skipif(not os.path.exists(CHROMIUM),
                    reason=f"{CHROMIUM} is absent (Debian: apt-get install chromium; .ci/run does it in CI)")
def test_dashboard_in_a_real_browser(tmp_path):
    from playwright.sync_api import sync_playwright

    store = str(tmp_path / "runs")
    a = run_sweep(UI_TOY, overrides={"width": [2, 4, 8, 16, 32, 64, 128], "lr": [0.1, 1.0]}, store=store,
                  progress=False)
    b = run_sweep(UI_TOY, overrides={"width": [2, 4, 8, 13, 32, 64, 128], "lr": [0.3, 3.0], "sleep": 0.001},
                  store=store, progress=False)
    server = Dashboard(store, tmp_path / "ui.log")
    sweep: dict = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.set_default_timeout(20_000)
                errors: list[str] = []
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

                # the runs list: both runs, their counts, and a filter that keeps one experiment
                page.goto(server.url + "/")
                assert page.locator("#runs tbody tr").count() == 2
                row = page.locator(f'tr[data-run="{b.run_id}"] td')
                assert [row.nth(i).inner_text().strip() for i in range(2, 8)] == \
                    ["ui-toy", "finished", "36", "0", "6", "42"]
                page.select_option("select[name=status]", "finished")
                page.click("#filters button[type=submit]")
                page.wait_for_url("**/?experiment=&status=finished**")
                assert page.locator("#runs tbody tr").count() == 2
                page.screenshot(path=str(tmp_path / "ui-runs.png"), full_page=True)
                keep(tmp_path, "ui-runs.png")

                # a run page: the experiment's figure loads, the charts are drawn, the claim has its verdict
                page.click(f'a[href="/runs/{a.run_id}"]')
                page.wait_for_url(f"**/runs/{a.run_id}")
                wait_until(page, "document.getElementById('figure').complete && "
                                       "document.getElementById('figure').naturalWidth > 300")
                page.wait_for_selector('#charts figure[data-metric="test_error"] svg polyline.mean')
                assert page.locator('#charts figure[data-metric="test_error"] g.series').count() == 2   # lr 0.1, 1.0
                assert page.locator("#claims td.v-supported").inner_text() == "supported"
                assert page.locator("#n-done").inner_text() == "42"
                page.screenshot(path=str(tmp_path / "ui-run.png"), full_page=True)
                keep(tmp_path, "ui-run.png")

                # live progress: a sweep runs in a thread of this process; the page polls, no reload
                def background():
                    try:
                        sweep["result"] = run_sweep(UI_TOY, overrides=LIVE, store=store, progress=False)
                    except BaseException as e:      # shown by the assertion below
                        sweep["error"] = e
                worker = threading.Thread(target=background, daemon=True)
                worker.start()
                reader = SQLStore(store, read_only=True)
                deadline = time.monotonic() + 30
                while not reader.query_runs(status="running")[0] and time.monotonic() < deadline:
                    time.sleep(0.05)
                live = reader.query_runs(status="running")[0][0]
                reader.close()
                # the runs list follows the running row (one JSON poll for all running rows)
                page.goto(server.url + "/")
                page.evaluate("window.__same_document = true")
                done = f'document.querySelector(\'tr[data-run="{live.id}"] .c-done\').textContent'
                before = int(page.evaluate(done))
                wait_until(page, f"+{done} >= {before + 2}")
                assert page.evaluate("window.__same_document") is True
                page.goto(f"{server.url}/runs/{live.id}")
                page.evaluate("window.__same_document = true")
                first = int(page.locator("#n-done").inner_text())
                assert first < 24 and page.locator("#status").inner_text() == "running"
                wait_until(page, f"+document.getElementById('n-done').textContent >= {first + 6}")
                wait_until(page, "+document.getElementById('charts').dataset.points >= 3")
                wait_until(page, "document.querySelectorAll('#table tbody tr').length >= 2")   # the table fills in too
                assert page.locator("#eta").inner_text().startswith("ETA")
                page.screenshot(path=str(tmp_path / "ui-progress.png"), full_page=True)
                keep(tmp_path, "ui-progress.png")
                wait_until(page, "document.getElementById('status').textContent === 'finished'",
                                       timeout=60)
                assert page.locator("#n-done").inner_text() == "24"
                assert page.locator("#eta").inner_text().startswith("wall time")
                wait_until(page, "!!document.querySelector('#claims td.v-supported')")     # findings once it ends
                assert page.locator("#table tbody tr").count() == 8
                assert page.evaluate("window.__same_document") is True         # never reloaded
                assert page.locator('#charts figure[data-metric="test_error"] circle').count() == 8
                worker.join(30)
                assert "error" not in sweep and sweep["result"].run_id == live.id

                # compare two runs: the boxes on the runs list, overlaid charts, differing parameters
                page.goto(server.url + "/")
                page.check(f'input[value="{a.run_id}"]')
                page.check(f'input[value="{b.run_id}"]')
                page.click("#compare-button")
                page.wait_for_url("**/compare?runs=*")
                page.wait_for_selector('#charts figure[data-metric="test_error"] g.series')
                labels = page.locator('#charts figure[data-metric="test_error"] g.series')
                assert labels.count() == 4             # 2 runs x 2 learning rates
                assert {labels.nth(i).get_attribute("data-label").split(" · ")[0] for i in range(4)} == \
                    {a.run_id, b.run_id}
                differs = page.locator("#params tr.differs th").all_inner_texts()
                assert [d.replace("≠", "").strip() for d in differs] == ["width", "lr", "sleep"]
                page.screenshot(path=str(tmp_path / "ui-compare.png"), full_page=True)
                keep(tmp_path, "ui-compare.png")
                assert errors == []                    # no CSP violation, no script error
            finally:
                browser.close()
    finally:
        server.stop()
    for name in ("ui-runs.png", "ui-run.png", "ui-progress.png", "ui-compare.png"):
        assert (tmp_path / name).stat().st_size > 10_000
