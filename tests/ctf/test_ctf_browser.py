"""Headless Debian chromium (Playwright) loads the leaderboard page after submissions and sees
what a person should: a ranked table with names and rounded scores."""
import os
import time

import numpy as np
import pytest

import ctf_models as cm
from ctf_helpers import ADMIN, npz, toy_arrays

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
W = np.array([[-1, 1], [0, 0], [0, 0], [0, 0], [0, 0]], np.float32)


@pytest.mark.skipif(not os.path.exists(CHROMIUM),
                    reason=f"{CHROMIUM} is absent (Debian: apt-get install chromium; .ci/run does it in CI)")
def test_leaderboard_page_in_a_real_browser(live_server, tmp_path):
    from playwright.sync_api import sync_playwright

    with live_server.http(headers={"X-Admin-Secret": ADMIN}) as h:
        r = h.post("/api/admin/tasks", files={"arrays": ("a.npz", npz(toy_arrays()))},
                   data={"name": "browser", "description": "Separate the two classes.", "decimals": "3"})
        assert r.status_code == 201, r.text
        tokens = {}
        for name, w in (("ada", W), ("grace", -W)):
            tok = h.post("/api/competitors", json={"name": name}).json()["token"]
            tokens[name] = tok
            r = h.post("/api/tasks/browser/submissions", headers={"Authorization": f"Bearer {tok}"},
                       files={"file": ("m.onnx", cm.linear(w))})
            assert r.status_code == 202
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rows = h.get("/api/tasks/browser/leaderboard").json()["rows"]
            if len(rows) == 2:
                break
            time.sleep(0.1)
        assert len(rows) == 2

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 600})
            page.set_default_timeout(15_000)
            page.goto(f"{live_server.url}/tasks/browser/leaderboard")
            assert page.title().startswith("browser: public leaderboard")
            assert page.locator("h1").inner_text() == "browser · public leaderboard"
            cells = [[c.inner_text().strip() for c in row.locator("td").all()]
                     for row in page.locator("#leaderboard tbody tr").all()]
            assert cells == [["1", "ada", "1.000", "1"], ["2", "grace", "0.000", "1"]]
            headers = [th.inner_text().strip() for th in page.locator("#leaderboard th").all()]
            assert headers == ["Rank", "Competitor", "Accuracy", "Submissions"]
            page.screenshot(path=str(tmp_path / "leaderboard.png"), full_page=True)
            # a competitor logs in and sees their own submission's status
            page.goto(f"{live_server.url}/login")
            page.fill("input[name=token]", tokens["grace"])
            page.click("button[type=submit]")
            page.wait_for_url("**/me")
            status = page.locator("#submissions tbody tr td .badge").first.inner_text()
            assert status == "scored" and "grace" in page.locator("h1").inner_text()
            assert page.locator("#submissions tbody tr").count() == 1      # only her own
            page.screenshot(path=str(tmp_path / "me.png"), full_page=True)
        finally:
            browser.close()
    assert (tmp_path / "leaderboard.png").stat().st_size > 1000
    if os.environ.get("PETRIDISH_KEEP_SCREENSHOTS"):
        import shutil
        shutil.copy(tmp_path / "leaderboard.png", os.environ["PETRIDISH_KEEP_SCREENSHOTS"])
        shutil.copy(tmp_path / "me.png", os.environ["PETRIDISH_KEEP_SCREENSHOTS"])
