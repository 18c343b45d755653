"""`petridish ctf ...` against a live server: --json prints one JSON document; errors are one
line on stderr with exit code 2."""
import json

import numpy as np
import pytest
import torch

from ctf_helpers import ADMIN, npz, toy_arrays
from petridish.cli.main import main
from petridish.ctf import export_onnx


@pytest.fixture
def cli(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PETRIDISH_CTF_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("PETRIDISH_CTF_TOKEN", raising=False)
    monkeypatch.delenv("PETRIDISH_CTF_ADMIN_SECRET", raising=False)

    def run(*args, admin=False):
        if admin:
            monkeypatch.setenv("PETRIDISH_CTF_ADMIN_SECRET", ADMIN)
        capsys.readouterr()
        rc = main(list(args))
        monkeypatch.delenv("PETRIDISH_CTF_ADMIN_SECRET", raising=False)
        out, err = capsys.readouterr()
        return rc, out, err
    return run


def _json(out):
    assert out.count("\n") == 1, out          # exactly one document
    return json.loads(out)


def test_cli_round_trip(cli, live_server, tmp_path):
    srv = ["--server", live_server.url]
    arrays = tmp_path / "toy.npz"
    arrays.write_bytes(npz(toy_arrays()))
    rc, out, _ = cli("ctf", "create-task", "clitask", "--arrays", str(arrays), "--daily-limit", "2",
                     "--leaderboard", "naive", "--json", *srv, admin=True)
    task = _json(out)
    assert rc == 0 and task["leaderboard"] == "naive" and task["daily_limit"] == 2
    rc, out, _ = cli("ctf", "register", "cli-user", "--json", *srv)
    assert rc == 0 and _json(out)["name"] == "cli-user"
    lin = torch.nn.Linear(5, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[-1.0, 0, 0, 0, 0], [1.0, 0, 0, 0, 0]]))
        lin.bias.zero_()
    model = export_onnx(lin, tmp_path / "model.onnx", input_dim=5)
    rc, out, _ = cli("ctf", "submit", str(model), "--task", "clitask", "--wait", "60", "--json", *srv)
    sub = _json(out)
    assert rc == 0 and sub["status"] == "scored" and sub["public_score"] == 1.0
    rc, out, _ = cli("ctf", "leaderboard", "clitask", "--json", *srv)
    board = _json(out)
    assert [(r["competitor"], r["score"]) for r in board["rows"]] == [("cli-user", 1.0)]
    rc, out, _ = cli("ctf", "submissions", "--json", *srv)
    assert [s["id"] for s in _json(out)] == [sub["id"]]
    rc, out, _ = cli("ctf", "leaderboard", "clitask", *srv)
    assert rc == 0 and "cli-user" in out and "1.00000" in out
    rc, out, _ = cli("ctf", "submissions", *srv)
    assert rc == 0 and "scored" in out
    # the second submission is allowed, the third hits --daily-limit 2
    assert cli("ctf", "submit", str(model), "--task", "clitask", *srv)[0] == 0
    rc, out, err = cli("ctf", "submit", str(model), "--task", "clitask", *srv)
    assert rc == 2 and "limited to 2" in err and err.count("\n") == 1 and "Traceback" not in err
    rc, out, err = cli("ctf", "update-task", "clitask", "--closes", "now", "--json", *srv, admin=True)
    assert rc == 0 and _json(out)["closed"]
    rc, out, _ = cli("ctf", "leaderboard", "clitask", "--private", "--json", *srv)
    assert rc == 0 and _json(out)["rows"][0]["score"] == 1.0


def test_cli_errors_are_one_line_exit_2(cli, live_server, tmp_path):
    srv = ["--server", live_server.url]
    cases = [
        (("ctf", "submit", str(tmp_path / "nope.onnx"), "--task", "x", "--token", "a.b", *srv), "existing ONNX file"),
        (("ctf", "leaderboard", "no-such-task", *srv), "404"),
        (("ctf", "create-task", "t", "--dataset", "mnist1d", *srv), "PETRIDISH_CTF_ADMIN_SECRET"),
        (("ctf", "leaderboard", "x", "--server", "http://127.0.0.1:9"), "Could not reach"),
        (("ctf", "leaderboard", "x", "--server", "ftp://x"), "http://"),
        (("ctf", "submissions", *srv), "No API token"),
        (("ctf", "submissions", "--token", "bad.token", *srv), "401"),
        (("ctf", "register", "bad name!", *srv), "422"),
        (("ctf", "create-task", "t", *srv), "exactly one of"),
        (("ctf", "update-task", "t", "--closes", "tomorrow", *srv), "ISO date-time"),
    ]
    for args, text in cases:
        rc, out, err = cli(*args, admin="create-task" in args and "--dataset" not in args)
        assert rc == 2, (args, rc, out, err)
        assert text in err and err.count("\n") == 1 and "Traceback" not in err, (args, err)


def test_create_task_from_mnist1d_and_the_demo(cli, live_server, make_client):
    rc, out, err = cli("ctf", "create-task", "mnist1d-cli", "--dataset", "mnist1d", "--json",
                       "--server", live_server.url, admin=True)
    task = _json(out)
    assert rc == 0 and task["input_shape"] == ["batch", 40] and task["output_shape"] == ["batch", 10]
    assert (task["n_train"], task["n_test_public"] + task["n_test_private"]) == (4000, 1000)
    # without --seed the test set comes from a secret seed: none of MNIST-1D's public test rows
    from petridish.ctf import storage
    from petridish.data import mnist1d
    x_test = np.load(storage.test_inputs_path(live_server.data_dir, "mnist1d-cli"))
    public = mnist1d(n_train=4000, n_test=1000, seed=42).x_test.numpy()
    assert min(np.abs(public - row).sum(1).min() for row in x_test[:200]) > 1e-3
    rc, out, err = cli("ctf", "create-task", "mnist1d-seeded", "--dataset", "mnist1d", "--seed", "42", "--json",
                       "--server", live_server.url, admin=True)
    x_seeded = np.load(storage.test_inputs_path(live_server.data_dir, "mnist1d-seeded"))
    assert rc == 0 and sorted(map(bytes, x_seeded)) == sorted(map(bytes, public))   # --seed 42: the public split
    from petridish.cli.ctf import _create_demo
    client = make_client()
    _create_demo(client.app)
    _create_demo(client.app)                      # idempotent
    demo = client.get("/api/tasks/mnist1d").json()
    assert demo["metric"] == "accuracy" and demo["leaderboard"] == "ladder" and demo["open"]


def test_serve_needs_the_admin_secret(cli):
    rc, out, err = cli("ctf", "serve", "--port", "8123")
    assert rc == 2 and "PETRIDISH_CTF_ADMIN_SECRET" in err and err.count("\n") == 1


@pytest.mark.parametrize("url, needle", [
    ("postgresql+psycopg://bob:hunter2@127.0.0.1:1/ctf", "Connection refused"),   # nothing listens on port 1
    ("notaurl", "Could not parse SQLAlchemy URL"),
])
def test_serve_with_a_database_it_cannot_open_is_one_line_without_the_password(cli, tmp_path, url, needle):
    rc, out, err = cli("ctf", "serve", "--port", "8123", "--db", url, "--data-dir", str(tmp_path), admin=True)
    assert rc == 2 and err.count("\n") == 1 and err.startswith("error: Could not open the referee's database at ")
    assert needle in err and "hunter2" not in err and "Traceback" not in err, err


def test_cli_registration_policy_invitations_and_issued_tokens(cli, live_server):
    srv = ["--server", live_server.url]
    rc, out, _ = cli("ctf", "registration", "close", "--json", *srv, admin=True)
    assert rc == 0 and _json(out)["open"] is False
    try:
        rc, out, err = cli("ctf", "register", "closed-out", *srv)
        assert rc == 2 and "403" in err and "invitation" in err and err.count("\n") == 1
        rc, out, _ = cli("ctf", "invite", "--count", "2", "--json", *srv, admin=True)
        codes = _json(out)["invitations"]
        rc, out, _ = cli("ctf", "register", "invited", "--invitation", codes[0], "--json", *srv)
        assert rc == 0 and _json(out)["name"] == "invited"
        rc, out, err = cli("ctf", "register", "invited-2", "--invitation", codes[0], *srv)
        assert rc == 2 and "used" in err
        rc, out, _ = cli("ctf", "issue-token", "handed", "--json", *srv, admin=True)
        assert rc == 0 and _json(out)["token"].count(".") == 1
        rc, out, err = cli("ctf", "registration", "ajar", *srv, admin=True)
        assert rc == 2 and "'open' or 'close'" in err
    finally:
        assert cli("ctf", "registration", "open", *srv, admin=True)[0] == 0
