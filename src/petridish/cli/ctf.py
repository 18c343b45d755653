"""`petridish ctf ...`: the Common Task Framework referee (server, admin and client).

Errors are PetridishError lines (the main CLI prints them and exits 2; --debug shows tracebacks).
`--json` prints exactly one JSON document on stdout.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional

import typer

from petridish.cli.emit import emit_json
from petridish.errors import PetridishError

app = typer.Typer(help="Common Task Framework referee: serve, create tasks, register, submit.",
                  no_args_is_help=True)

SERVER = typer.Option(None, "--server", help="Referee URL [$PETRIDISH_CTF_SERVER or http://127.0.0.1:8000].")
JSON = typer.Option(False, "--json", help="Print one JSON document on stdout.")
TOKEN = typer.Option(None, "--token", help="API token [$PETRIDISH_CTF_TOKEN or the one `register` saved].")


def _client(server, token=None, admin=False):
    from petridish.ctf.client import Client, load_token, server_url
    url = server_url(server)
    secret = None
    if admin:
        secret = os.environ.get("PETRIDISH_CTF_ADMIN_SECRET")
        if not secret:
            raise PetridishError("Admin commands need the referee's admin secret in the environment "
                                 "variable PETRIDISH_CTF_ADMIN_SECRET.")
    return Client(url, token=load_token(url, token) if token is not False else None, admin_secret=secret)


@app.command("serve")
def serve(host: str = typer.Option("127.0.0.1", "--host"), port: int = typer.Option(8000, "--port"),
          db: Optional[str] = typer.Option(None, "--db", help="SQLAlchemy URL [sqlite in --data-dir]."),
          data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Task arrays and models [./petridish-ctf]."),
          demo: bool = typer.Option(False, "--demo", help="Create the mnist1d demo task if absent."),
          workers: Optional[int] = typer.Option(None, "--scoring-workers", help="Scoring processes at a time [2]."),
          forwarded_allow_ips: Optional[str] = typer.Option(
              None, "--forwarded-allow-ips", help="Behind a reverse proxy: the proxy's addresses (comma-separated) "
                                                   "whose X-Forwarded-For/-Proto are trusted."),
          log_level: str = typer.Option("info", "--log-level")) -> None:
    """Start the referee (FastAPI under uvicorn). Needs PETRIDISH_CTF_ADMIN_SECRET."""
    from petridish.ctf.main import create_app
    from petridish.ctf.serving import serve as serve_app
    from petridish.ctf.settings import load_settings
    if not 0 < port < 65536:
        raise PetridishError(f"The '--port' option must be an int between 1 and 65535. Got {port}.")
    settings = load_settings(db_url=db, data_dir=data_dir, scoring_workers=workers)
    app_ = create_app(settings)
    if demo:
        _create_demo(app_)
    typer.echo(f"petridish CTF referee on http://{host}:{port}  (data: {Path(settings.data_dir).resolve()})", err=True)
    serve_app(app_, settings, host=host, port=port, log_level=log_level, forwarded_allow_ips=forwarded_allow_ips)


def _create_demo(app_) -> None:
    from sqlalchemy import select

    from petridish.ctf.db import Task
    from petridish.ctf.tasks import create_task, mnist1d_arrays
    with app_.state.make_session() as s:
        if s.scalar(select(Task.id).where(Task.name == "mnist1d")) is None:
            create_task(s, app_.state.settings.data_dir, name="mnist1d", metric="accuracy",
                        leaderboard="ladder", description=(
                            "MNIST-1D (Greydanus & Kobak 2024): classify 40-sample 1-D signals into 10 "
                            "digits. 4,000 training examples; 1,000 sequestered test examples, half "
                            "for the public leaderboard, half private."),
                        daily_limit=app_.state.settings.daily_limit, decimals=3, **mnist1d_arrays())


@app.command("create-task")
def create_task_cmd(
    name: str = typer.Argument(..., help="Task name: a-z, 0-9, '-', '_'."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="A petridish data set: mnist1d."),
    arrays: Optional[Path] = typer.Option(None, "--arrays", help="An .npz with x_train, y_train, x_test, y_test."),
    metric: str = typer.Option("accuracy", "--metric", help="accuracy, cross-entropy or mse."),
    leaderboard: str = typer.Option("ladder", "--leaderboard", help="ladder, fixed-ladder or naive."),
    eta: float = typer.Option(0.01, "--eta", help="Step of the fixed-ladder."),
    daily_limit: Optional[int] = typer.Option(None, "--daily-limit", help="Submissions per competitor per day."),
    decimals: Optional[int] = typer.Option(None, "--decimals", help="Rounding of displayed scores."),
    public_fraction: float = typer.Option(0.5, "--public-fraction", help="Share of the test set on the public board."),
    description: str = typer.Option("", "--description"),
    opens: Optional[str] = typer.Option(None, "--opens", help="ISO time (UTC) [now]."),
    closes: Optional[str] = typer.Option(None, "--closes", help="ISO time (UTC) [opens + --days]."),
    days: float = typer.Option(30.0, "--days", help="Duration when --closes is not given."),
    n_train: int = typer.Option(4000, "--n-train", help="With --dataset mnist1d."),
    n_test: int = typer.Option(1000, "--n-test", help="With --dataset mnist1d."),
    seed: Optional[int] = typer.Option(None, "--seed", help="With --dataset mnist1d: a reproducible split "
                                       "(42: MNIST-1D's public one) [secret seeds, drawn and forgotten]."),
    server: Optional[str] = SERVER, as_json: bool = JSON,
) -> None:
    """Admin: create a task on a running referee (needs PETRIDISH_CTF_ADMIN_SECRET)."""
    import datetime as dt

    from petridish.ctf.storage import npz_bytes
    if (dataset is None) == (arrays is None):
        raise PetridishError("The create-task command needs exactly one of --dataset mnist1d or --arrays FILE.npz.")
    if dataset is not None:
        if dataset != "mnist1d":
            raise PetridishError(f"The '--dataset' option must be 'mnist1d'. Got {dataset!r}.")
        from petridish.ctf.tasks import mnist1d_arrays
        payload = npz_bytes(**mnist1d_arrays(n_train=n_train, n_test=n_test, seed=seed))
    else:
        if not arrays.is_file():
            raise PetridishError(f"The '--arrays' option must be an existing .npz file. Got {str(arrays)!r}.")
        payload = arrays.read_bytes()
    t_open = _parse_time(opens, "--opens") or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    t_close = _parse_time(closes, "--closes") or t_open + dt.timedelta(days=days)
    out = _client(server, token=False, admin=True).create_task(
        payload, name=name, metric=metric, leaderboard=leaderboard, eta=eta, daily_limit=daily_limit,
        decimals=decimals, public_fraction=public_fraction, description=description,
        opens_at=t_open.isoformat(), closes_at=t_close.isoformat())
    if as_json:
        emit_json(out)
    else:
        typer.echo(f"created task {out['name']}: {out['metric']}, {out['leaderboard']} leaderboard, "
                   f"{out['n_train']} train / {out['n_test_public']}+{out['n_test_private']} test, "
                   f"closes {out['closes_at']}")


@app.command("update-task")
def update_task_cmd(name: str = typer.Argument(...),
                    opens: Optional[str] = typer.Option(None, "--opens", help="ISO time (UTC)."),
                    closes: Optional[str] = typer.Option(None, "--closes", help="ISO time (UTC); 'now' closes it."),
                    daily_limit: Optional[int] = typer.Option(None, "--daily-limit"),
                    server: Optional[str] = SERVER, as_json: bool = JSON) -> None:
    """Admin: change a task's opening/closing time or daily limit."""
    import datetime as dt
    t_close = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) if closes == "now" else _parse_time(closes, "--closes")
    t_open = _parse_time(opens, "--opens")
    out = _client(server, token=False, admin=True).update_task(
        name, opens_at=t_open and t_open.isoformat(), closes_at=t_close and t_close.isoformat(),
        daily_limit=daily_limit)
    emit_json(out) if as_json else typer.echo(f"task {out['name']}: opens {out['opens_at']}, closes "
                                          f"{out['closes_at']}, {out['daily_limit']} submissions/day")


def _parse_time(text: Optional[str], option: str):
    import datetime as dt
    if text is None:
        return None
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise PetridishError(f"The '{option}' option must be an ISO date-time such as 2026-12-31T23:59. "
                             f"Got {text!r}.") from None
    return t if t.tzinfo is None else t.astimezone(dt.timezone.utc).replace(tzinfo=None)


@app.command("register")
def register(name: str = typer.Argument(..., help="Your competitor name."),
             invitation: Optional[str] = typer.Option(None, "--invitation", help="A code from the admin "
                                                      "(needed while registration is closed)."),
             server: Optional[str] = SERVER, as_json: bool = JSON) -> None:
    """Register as a competitor; prints the API token (shown once) and saves it locally."""
    from petridish.ctf.client import save_token
    c = _client(server, token=False)
    out = c.register(name, invitation=invitation)
    path = save_token(c.server, out["token"])
    if as_json:
        emit_json({**out, "saved_to": str(path)})
    else:
        typer.echo(f"registered {out['name']}; token (saved to {path}, shown only once):\n{out['token']}")


@app.command("registration")
def registration_cmd(state: str = typer.Argument(..., help="open or close."),
                     server: Optional[str] = SERVER, as_json: bool = JSON) -> None:
    """Admin: open registration (throttled per client) or close it (invitations and issued tokens only)."""
    if state not in ("open", "close"):
        raise PetridishError(f"The 'state' argument of registration must be 'open' or 'close'. Got {state!r}.")
    out = _client(server, token=False, admin=True).set_registration(state == "open")
    emit_json(out) if as_json else typer.echo(f"registration is {'open' if out['open'] else 'closed (invitations only)'}")


@app.command("invite")
def invite_cmd(count: int = typer.Option(1, "--count", help="How many single-use codes (1-1000)."),
               days: float = typer.Option(14.0, "--days", help="Days until they expire."),
               server: Optional[str] = SERVER, as_json: bool = JSON) -> None:
    """Admin: issue single-use invitation codes (`petridish ctf register NAME --invitation CODE`)."""
    out = _client(server, token=False, admin=True).invite(count, days)
    emit_json(out) if as_json else typer.echo("\n".join(out["invitations"]) + f"\n(expire {out['expires_at']})")


@app.command("issue-token")
def issue_token_cmd(name: str = typer.Argument(..., help="The competitor's name."),
                    server: Optional[str] = SERVER, as_json: bool = JSON) -> None:
    """Admin: register a competitor and print its API token (to hand over privately)."""
    out = _client(server, token=False, admin=True).issue_token(name)
    emit_json(out) if as_json else typer.echo(f"registered {out['name']}; token (shown only once):\n{out['token']}")


@app.command("submit")
def submit(model: Path = typer.Argument(..., help="An ONNX file (see petridish.ctf.export_onnx)."),
           task: str = typer.Option(..., "--task", help="Task name."),
           wait: float = typer.Option(0.0, "--wait", help="Seconds to wait for the score (0: do not wait)."),
           server: Optional[str] = SERVER, token: Optional[str] = TOKEN, as_json: bool = JSON) -> None:
    """Submit a model; it is stored, then scored by the referee."""
    if not model.is_file():
        raise PetridishError(f"The 'model' argument of submit must be an existing ONNX file. Got {str(model)!r}.")
    c = _client(server, token)
    out = c.submit(task, model.read_bytes())
    deadline = time.monotonic() + max(0.0, wait)
    while out["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.5)
        out = c.submission(out["id"])
    if as_json:
        emit_json(out)
    else:
        score = f", public score {out['public_score']}" if out.get("public_score") is not None else ""
        reason = f": {out['reason']}" if out.get("reason") else ""
        typer.echo(f"submission {out['id']} to {task}: {out['status']}{score}{reason}")


@app.command("leaderboard")
def leaderboard(task: str = typer.Argument(...), private: bool = typer.Option(False, "--private",
                help="The private board (after the task closes)."),
                server: Optional[str] = SERVER, as_json: bool = JSON) -> None:
    """Print a task's leaderboard."""
    out = _client(server, token=False).leaderboard(task, private=private)
    if as_json:
        emit_json(out)
        return
    t = out["task"]
    typer.echo(f"{t['name']} — {out['board']} leaderboard ({t['metric_name']}, "
               f"{'higher' if t['higher_is_better'] else 'lower'} is better; {t['leaderboard']})")
    for r in out["rows"]:
        typer.echo(f"{r['rank']:>4}  {r['competitor']:<24} {r['score']:.{t['decimals']}f}  ({r['submissions']} submissions)")
    if not out["rows"]:
        typer.echo("  (no scored submissions yet)")


@app.command("submissions")
def submissions(task: Optional[str] = typer.Option(None, "--task"), server: Optional[str] = SERVER,
                token: Optional[str] = TOKEN, as_json: bool = JSON) -> None:
    """Your own submissions, with status, score and reason."""
    out = _client(server, token).submissions(task)
    if as_json:
        emit_json(out)
        return
    for s in out:
        score = "" if s["public_score"] is None else f"  public {s['public_score']}"
        priv = "" if s["private_score"] is None else f"  private {s['private_score']}"
        reason = f"  {s['reason']}" if s["reason"] else ""
        typer.echo(f"{s['id']:>6}  {s['task']:<20} {s['created_at']}  {s['status']:<8}{score}{priv}{reason}")
    if not out:
        typer.echo("no submissions yet")
