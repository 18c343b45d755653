"""The durable scoring queue.

The queue IS the database: a submission row is committed with status 'queued' (its file
already fsynced) before it is handed to a worker thread. At start-up every 'queued' or
'running' row is re-queued, so a scoring that a restart interrupted is done again. The
Ladder update and the status change to 'scored' happen in one transaction under one lock,
so a submission is counted on the leaderboard exactly once. The scorer's commits are not
fsynced (db.make_engine durable=False): a power cut can only send a scored submission back
to the queue, never lose one.
"""
from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from petridish.ctf import ladder, storage
from petridish.ctf.db import LadderState, Submission, Task, utcnow
from petridish.ctf.metrics import per_example_loss
from petridish.ctf.sandbox import ScoringFailed, close_helper, run_model
from petridish.ctf.settings import Settings

log = logging.getLogger("petridish.ctf")
MAX_ATTEMPTS = 3


class Scorer:
    def __init__(self, settings: Settings, make_session: sessionmaker,
                 write_lock: threading.Lock | None = None):
        self.settings = settings
        self.make_session = make_session
        # the app's lock for all database writes; it also serializes every leaderboard update
        self.write_lock = write_lock or threading.Lock()
        self.data_dir = Path(settings.data_dir)
        self._queue: queue.Queue = queue.Queue()
        self._pending: set[int] = set()
        self._pending_lock = threading.Lock()
        self._labels: dict[str, np.ndarray] = {}
        self._threads: list[threading.Thread] = []

    def start(self) -> int:
        """Re-queue unfinished submissions (oldest first) and start the workers; returns how many."""
        with self.make_session() as s:
            rows = s.scalars(select(Submission).where(Submission.status.in_(("queued", "running")))
                             .order_by(Submission.id)).all()
            ids = []
            for row in rows:
                if row.attempts >= MAX_ATTEMPTS:   # a submission that keeps killing the referee
                    row.status, row.reason = "failed", "The referee could not score this model after repeated attempts."
                else:
                    row.status = "queued"
                    ids.append(row.id)
            s.commit()
        for sid in ids:
            self.enqueue(sid)
        for i in range(self.settings.scoring_workers):
            t = threading.Thread(target=self._work, name=f"ctf-scorer-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        if ids:
            log.info("resumed %d unfinished scorings", len(ids))
        return len(ids)

    def stop(self, timeout: float = 5.0) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join(timeout)
        self._threads.clear()

    def enqueue(self, submission_id: int) -> None:
        with self._pending_lock:
            if submission_id in self._pending:
                return
            self._pending.add(submission_id)
        self._queue.put(submission_id)

    def pending(self) -> int:
        with self._pending_lock:
            return len(self._pending)

    def _work(self) -> None:
        while True:
            sid = self._queue.get()
            if sid is None:
                close_helper()
                return
            try:
                self.score(sid)
            except Exception:   # never let one submission stop the worker
                log.exception("scoring submission %s failed unexpectedly", sid)
                self._mark_failed(sid, "The referee hit an internal error while scoring; it will be retried at restart.",
                                  keep_queued=True)
            finally:
                with self._pending_lock:
                    self._pending.discard(sid)

    def score(self, sid: int) -> None:
        with self.write_lock, self.make_session() as s:
            sub = s.get(Submission, sid)
            if sub is None or sub.status not in ("queued", "running"):
                return
            task = s.get(Task, sub.task_id)
            sub.status, sub.attempts = "running", sub.attempts + 1
            s.commit()
            file_name, task_name, metric = sub.file_name, task.name, task.metric
            n_test, n_public, n_out = task.n_test, task.n_public, task.n_outputs
        st = self.settings
        try:
            out = run_model(storage.model_path(self.data_dir, file_name),
                            storage.test_inputs_path(self.data_dir, task_name),
                            work_dir=storage.scratch_dir(self.data_dir), timeout_s=st.score_timeout_s,
                            memory_mb=st.score_memory_mb, cpu_s=st.score_cpu_s, batch_size=st.batch_size)
            losses = self._losses(out, task_name, metric, n_test, n_out)
        except ScoringFailed as exc:
            self._mark_failed(sid, str(exc))
            return
        self._record(sid, losses[:n_public], losses[n_public:])

    def _losses(self, out: np.ndarray, task_name: str, metric: str, n_test: int, n_out: int) -> np.ndarray:
        if out.ndim != 2 or out.shape != (n_test, n_out) or not np.issubdtype(out.dtype, np.floating):
            raise ScoringFailed(f"The model's first output must be a float tensor of shape (batch, {n_out}). "
                                f"Got dtype {out.dtype} and shape (batch, {', '.join(map(str, out.shape[1:]))}).")
        if not np.isfinite(out).all():
            raise ScoringFailed("The model's outputs must be finite numbers. Got NaN or Inf values.")
        if task_name not in self._labels:
            self._labels[task_name] = storage.load_test_labels(self.data_dir, task_name)
        return per_example_loss(metric, out, self._labels[task_name])

    def _record(self, sid: int, public: np.ndarray, private: np.ndarray) -> None:
        with self.write_lock, self.make_session() as s:
            sub = s.get(Submission, sid)
            if sub is None or sub.status != "running":
                return
            task = s.get(Task, sub.task_id)
            state = s.scalar(select(LadderState).where(LadderState.task_id == sub.task_id,
                                                       LadderState.competitor_id == sub.competitor_id))
            best_l = ladder.unpack(state.best_losses) if state else None
            step = ladder.step(task.leaderboard, public, best_l, state.released_loss if state else None,
                               eta=task.eta)
            if state is None:
                state = LadderState(task_id=sub.task_id, competitor_id=sub.competitor_id,
                                    released_loss=step.best_loss, best_submission_id=sid,
                                    best_losses=ladder.pack(public), n_scored=0)
                s.add(state)
            elif step.accepted:
                state.best_losses, state.best_submission_id = ladder.pack(public), sid
            state.released_loss = step.best_loss
            state.n_scored += 1
            sub.ladder_seq = state.n_scored
            sub.status, sub.reason, sub.scored_at = "scored", "", utcnow()
            sub.released = step.released
            sub.public_loss, sub.private_loss = float(public.mean()), float(private.mean())
            s.commit()

    def _mark_failed(self, sid: int, reason: str, keep_queued: bool = False) -> None:
        with self.write_lock, self.make_session() as s:
            sub = s.get(Submission, sid)
            if sub is None or sub.status == "scored":
                return
            sub.status = "queued" if keep_queued else "failed"
            sub.reason, sub.scored_at = reason[:500], utcnow()
            s.commit()
