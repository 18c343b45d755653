"""What each resource looks like from outside: the only place that turns rows into public dicts.

Nothing here ever reads the test arrays. Exact public losses are never shown (only the released
Ladder score); private scores only once the task has closed.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from petridish.ctf.db import Competitor, LadderState, Submission, Task, utcnow
from petridish.ctf.metrics import display, display_name, higher_is_better


def iso(t: dt.datetime | None) -> str | None:
    return None if t is None else t.replace(microsecond=0).isoformat() + "Z"


def is_closed(task: Task, now: dt.datetime | None = None) -> bool:
    return (now or utcnow()) >= task.closes_at


def is_open(task: Task, now: dt.datetime | None = None) -> bool:
    now = now or utcnow()
    return task.opens_at <= now < task.closes_at


def shown(task: Task, loss: float | None) -> float | None:
    return None if loss is None else round(display(task.metric, loss), task.decimals)


def task_dict(task: Task) -> dict:
    return {"name": task.name, "description": task.description, "metric": task.metric,
            "metric_name": display_name(task.metric), "higher_is_better": higher_is_better(task.metric),
            "leaderboard": task.leaderboard, "eta": task.eta if task.leaderboard == "fixed-ladder" else None,
            "decimals": task.decimals, "daily_limit": task.daily_limit,
            "input_shape": ["batch", task.input_dim], "output_shape": ["batch", task.n_outputs],
            "n_train": task.n_train, "n_test_public": task.n_public,
            "n_test_private": task.n_test - task.n_public,
            "opens_at": iso(task.opens_at), "closes_at": iso(task.closes_at),
            "open": is_open(task), "closed": is_closed(task),
            "train_url": f"/api/tasks/{task.name}/train"}


def submission_dict(sub: Submission, task: Task) -> dict:
    return {"id": sub.id, "task": task.name, "status": sub.status, "reason": sub.reason or None,
            "created_at": iso(sub.created_at), "scored_at": iso(sub.scored_at), "size": sub.size,
            "sha256": sub.sha256, "public_score": shown(task, sub.released) if sub.status == "scored" else None,
            "private_score": shown(task, sub.private_loss) if (sub.status == "scored" and is_closed(task)) else None,
            "metric": task.metric, "decimals": task.decimals}


def public_leaderboard(session: Session, task: Task) -> list[dict]:
    rows = session.execute(
        select(Competitor.name, LadderState.released_loss, LadderState.n_scored, LadderState.best_submission_id)
        .join(Competitor, Competitor.id == LadderState.competitor_id)
        .where(LadderState.task_id == task.id)).all()
    out = [{"competitor": name, "score": shown(task, loss), "_loss": round(loss, task.decimals),
            "submissions": n, "_best": best} for name, loss, n, best in rows]
    return _ranked(out)


def private_leaderboard(session: Session, task: Task) -> list[dict]:
    """Each competitor's selected submission (the one holding the public board's best) scored privately."""
    rows = session.execute(
        select(Competitor.name, Submission.private_loss, LadderState.released_loss, LadderState.n_scored)
        .join(LadderState, LadderState.competitor_id == Competitor.id)
        .join(Submission, Submission.id == LadderState.best_submission_id)
        .where(LadderState.task_id == task.id)).all()
    out = [{"competitor": name, "score": shown(task, ploss), "_loss": round(ploss, task.decimals),
            "public_score": shown(task, rloss), "submissions": n} for name, ploss, rloss, n in rows]
    return _ranked(out)


def _ranked(rows: list[dict]) -> list[dict]:
    rows.sort(key=lambda r: (r["_loss"], r["competitor"]))
    rank, prev = 0, None
    for i, r in enumerate(rows):
        if r["_loss"] != prev:
            rank, prev = i + 1, r["_loss"]
        r["rank"] = rank
        r.pop("_loss")
        r.pop("_best", None)
    return rows


def submissions_today(session: Session, task: Task, competitor: Competitor) -> int:
    start = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    return session.scalar(select(func.count(Submission.id)).where(
        Submission.task_id == task.id, Submission.competitor_id == competitor.id,
        Submission.created_at >= start)) or 0
