"""Group commit of new submission rows: one durable commit (one fsync) for every row that
arrived while the previous commit was being written.

Each submit request hands its row to ``Intake.add`` and waits on the app's write lock; whoever
gets the lock first inserts every pending row (checking each daily limit) and commits once, the
others find their row already done. With 20 clients submitting at once a request waits for about
two commits instead of twenty, which on a slow disk is the difference between 0.3 s and 30 s.
"""
from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from petridish.ctf.db import Submission, utcnow


@dataclass(frozen=True)
class NewSubmission:
    task_id: int
    competitor_id: int
    daily_limit: int
    file_name: str
    sha256: str
    size: int


class Intake:
    def __init__(self, make_session: sessionmaker, write_lock: threading.Lock):
        self.make_session, self.write_lock = make_session, write_lock
        self._pending: list[tuple[NewSubmission, Future]] = []
        self._mutex = threading.Lock()

    def add(self, new: NewSubmission) -> Submission | None:
        """The committed row, or None if the competitor's daily limit is reached."""
        done: Future = Future()
        with self._mutex:
            self._pending.append((new, done))
        with self.write_lock:
            if not done.done():
                with self._mutex:
                    batch, self._pending = self._pending, []
                self._commit(batch)
        return done.result()

    def _commit(self, batch: list[tuple[NewSubmission, Future]]) -> None:
        try:
            with self.make_session() as s:
                rows, used = [], {}
                day = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
                for new, _ in batch:
                    key = (new.task_id, new.competitor_id)
                    if key not in used:
                        used[key] = s.scalar(select(func.count(Submission.id)).where(
                            Submission.task_id == new.task_id, Submission.competitor_id == new.competitor_id,
                            Submission.created_at >= day)) or 0
                    row = None
                    if used[key] < new.daily_limit:
                        used[key] += 1
                        row = Submission(task_id=new.task_id, competitor_id=new.competitor_id,
                                         file_name=new.file_name, sha256=new.sha256, size=new.size,
                                         status="queued")
                        s.add(row)
                    rows.append(row)
                s.commit()
        except BaseException as exc:
            for _, done in batch:      # every waiting request answers with the error
                done.set_exception(exc)
            return
        for (_, done), row in zip(batch, rows):
            done.set_result(row)
