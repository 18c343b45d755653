"""Tasks: list, details, public training data download."""
from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from petridish.ctf import storage
from petridish.ctf.db import Task
from petridish.ctf.deps import get_db, get_task
from petridish.ctf.views import task_dict

router = APIRouter(prefix="/api/tasks", tags=["tasks"])


@router.get("")
def list_tasks(session: Session = Depends(get_db)) -> list[dict]:
    return [task_dict(t) for t in session.scalars(select(Task).order_by(Task.id))]


@router.get("/{name}")
def task_detail(task: Task = Depends(get_task)) -> dict:
    return task_dict(task)


@router.get("/{name}/train")
def train_data(request: Request, task: Task = Depends(get_task)) -> FileResponse:
    """The public training set as a .npz with arrays x_train and y_train (nothing else)."""
    path = storage.train_path(request.app.state.settings.data_dir, task.name)
    return FileResponse(path, media_type="application/octet-stream", filename=f"{task.name}-train.npz")
