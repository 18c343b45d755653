"""Fixtures of the CTF referee tests: an in-process app (TestClient) and a live uvicorn server."""
from __future__ import annotations

import warnings

import pytest

from ctf_helpers import ADMIN, LiveServer


@pytest.fixture
def make_client(tmp_path):
    """make_client(**settings) -> a started TestClient (scorer running); closed at teardown."""
    from petridish.ctf import create_app, load_settings
    opened = []

    def make(**settings):
        base = dict(admin_secret=ADMIN, data_dir=tmp_path / "ctf", scoring_workers=1, score_timeout_s=5)
        base.update(settings)
        with warnings.catch_warnings():   # starlette's note about httpx2; irrelevant here
            warnings.simplefilter("ignore", DeprecationWarning)
            from fastapi.testclient import TestClient
            c = TestClient(create_app(load_settings(**base)))
        c.__enter__()
        opened.append(c)
        return c
    yield make
    for c in opened:
        c.__exit__(None, None, None)


@pytest.fixture
def client(make_client):
    return make_client()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    """One live server shared by the concurrency, CLI and browser tests (distinct task names)."""
    server = LiveServer(tmp_path_factory.mktemp("live") / "ctf").start()
    yield server
    server.stop()
