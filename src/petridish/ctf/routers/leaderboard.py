"""Leaderboards: public (Ladder-released scores, served from the board cache) always; private
only after the task closes."""
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from petridish.ctf import board
from petridish.ctf.db import Task
from petridish.ctf.deps import get_db, get_task
from petridish.ctf.views import is_closed, iso, private_leaderboard, task_dict

router = APIRouter(prefix="/api/tasks", tags=["leaderboard"])


@router.get("/{name}/leaderboard", response_class=Response)
async def public(name: str, request: Request) -> Response:
    """{"task": {...}, "board": "public", "rows": [{"rank", "competitor", "score", "submissions"}]}"""
    return await board.serve(request, "json", name)


@router.get("/{name}/leaderboard/private")
def private(task: Task = Depends(get_task), session: Session = Depends(get_db)) -> dict:
    if not is_closed(task):
        raise HTTPException(403, f"The private leaderboard of {task.name!r} is revealed only after the "
                                 f"task closes ({iso(task.closes_at)}). It is still open.")
    return {"task": task_dict(task), "board": "private", "rows": private_leaderboard(session, task)}
