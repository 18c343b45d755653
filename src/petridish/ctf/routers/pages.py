"""Server-rendered HTML pages (Jinja2, autoescaped): tasks, a task, leaderboards, your submissions.

A competitor logs in on /login with their API token. The cookie then holds a random session id
(never the token): HttpOnly, SameSite=Strict, Secure over HTTPS, valid settings.session_days;
logout deletes the session on the server. POSTs from another Origin are refused by
serving.Hardening, which also sends the CSP (hence the stylesheet at /static/ctf.css).
"""
from pathlib import Path

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from petridish.ctf import board, enrolment, storage
from petridish.ctf.db import Submission, Task
from petridish.ctf.deps import competitor_from_session, competitor_from_token, get_db
from petridish.ctf.views import is_closed, private_leaderboard, submission_dict, task_dict

router = APIRouter(tags=["pages"], include_in_schema=False)
COOKIE = "ctf_session"
CSS = (Path(__file__).parents[1] / "templates" / "ctf.css").read_bytes()


def _render(request: Request, template: str, status: int = 200, **ctx) -> HTMLResponse:
    return request.app.state.templates.TemplateResponse(request, template, ctx, status_code=status)


def _task_or_404(request: Request, session: Session, name: str):
    task = session.scalar(select(Task).where(Task.name == name)) if storage.NAME_RE.fullmatch(name) else None
    if task is None:
        return None, _render(request, "error.html", 404, title="No such task",
                             message=f"There is no task named {name[:64]!r}.")
    return task, None


@router.get("/static/ctf.css")
def stylesheet() -> Response:
    return Response(CSS, media_type="text/css", headers={"Cache-Control": "public, max-age=3600"})


@router.get("/", response_class=HTMLResponse)
def task_list(request: Request, session: Session = Depends(get_db)):
    tasks = [task_dict(t) for t in session.scalars(select(Task).order_by(Task.id))]
    return _render(request, "tasks.html", title="Tasks", tasks=tasks)


@router.get("/tasks/{name}", response_class=HTMLResponse)
def task_page(name: str, request: Request, session: Session = Depends(get_db)):
    task, err = _task_or_404(request, session, name)
    return err or _render(request, "task.html", title=task.name, task=task_dict(task))


@router.get("/tasks/{name}/leaderboard", response_class=HTMLResponse)
async def leaderboard_page(name: str, request: Request):
    try:
        return await board.serve(request, "html", name)
    except HTTPException as exc:
        return _render(request, "error.html", exc.status_code, title="No such task",
                       message=f"There is no task named {name[:64]!r}.")


@router.get("/tasks/{name}/private", response_class=HTMLResponse)
def private_page(name: str, request: Request, session: Session = Depends(get_db)):
    task, err = _task_or_404(request, session, name)
    if err:
        return err
    if not is_closed(task):
        return _render(request, "error.html", 403, title="Private leaderboard not yet revealed",
                       message=f"The private leaderboard of {task.name} is revealed after the task "
                               f"closes ({task_dict(task)['closes_at']}).")
    return _render(request, "leaderboard.html", title=f"{task.name}: private leaderboard",
                   task=task_dict(task), rows=private_leaderboard(session, task), board="private")


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request):
    return _render(request, "login.html", title="Log in", error=None)


@router.post("/login")
def login(request: Request, token: str = Form("", max_length=200), session: Session = Depends(get_db)):
    comp = competitor_from_token(session, token.strip())
    if comp is None:
        return _render(request, "login.html", 401, title="Log in",
                       error="That token is not valid. Use the token `petridish ctf register` printed.")
    days = request.app.state.settings.session_days
    with request.app.state.write_lock:
        sid = enrolment.open_session(session, comp.id, days)
    resp = RedirectResponse("/me", status_code=303)
    resp.set_cookie(COOKIE, sid, max_age=int(days * 86400), **_cookie_flags(request))
    return resp


@router.post("/logout")
def logout(request: Request, session: Session = Depends(get_db)):
    with request.app.state.write_lock:
        enrolment.close_session(session, request.cookies.get(COOKIE))
    resp = RedirectResponse("/", status_code=303)
    resp.delete_cookie(COOKIE, **_cookie_flags(request))
    return resp


def _cookie_flags(request: Request) -> dict:
    return {"httponly": True, "samesite": "strict", "secure": request.url.scheme == "https", "path": "/"}


@router.get("/me", response_class=HTMLResponse)
def my_page(request: Request, session: Session = Depends(get_db)):
    comp = competitor_from_session(session, request.cookies.get(COOKIE))
    if comp is None:
        return _render(request, "login.html", 401, title="Log in", error=None)
    rows = session.execute(select(Submission, Task).join(Task, Task.id == Submission.task_id)
                           .where(Submission.competitor_id == comp.id).order_by(Submission.id.desc()))
    subs = [submission_dict(s, t) for s, t in rows]
    return _render(request, "submissions.html", title=f"Submissions of {comp.name}",
                   competitor=comp.name, submissions=subs)
