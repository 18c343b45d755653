"""The durable scoring queue, scheduled fairly across competitors.

The queue IS the database: a submission row is committed with status 'queued' (its file
already fsynced) before it is handed to a worker thread. At start-up every 'queued' or
'running' row is re-queued, so a scoring that a restart interrupted is done again, however
often: the sandbox keeps a model from crashing the referee, so an interrupted scoring is the
referee's fault and never fails the submission (``attempts`` only counts the tries). The
Ladder update and the status change to 'scored' happen in one transaction under one lock,
so a submission is counted on the leaderboard exactly once. The scorer's commits are not
fsynced (db.make_engine durable=False): a power cut can only send a scored submission back
to the queue, never lose one.

Fairness: waiting submissions are taken round-robin across competitors, and one competitor
has at most max(1, workers - 1) submissions in flight, so with two or more workers one is
always free for the others: six loop bombs from one competitor delay someone else's model by
at most one scoring, not six.
"""
from __future__ import annotations

import collections
import logging
import shutil
import threading
import time
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from petridish.ctf import ladder, storage
from petridish.ctf.db import LadderState, Submission, Task, utcnow
from petridish.ctf.metrics import per_example_loss
from petridish.ctf.sandbox import (RefereeFault, ScoringFailed, check_upload, close_helper, run_model,
                                    start_helpers)
from petridish.ctf.settings import Settings
from petridish.ctf.validate import Signature

log = logging.getLogger("petridish.ctf")
FAULT_RETRIES = 3        # referee faults retried in this process before waiting for a restart
FAULT_PAUSE_S = 1.0      # pause before such a retry


class FairQueue:
    """Submission ids by competitor: round-robin across competitors, at most `cap` in flight each."""

    def __init__(self, cap: int):
        self.cap = cap
        self._cond = threading.Condition()
        self._waiting: collections.OrderedDict[int, collections.deque] = collections.OrderedDict()
        self._running: collections.Counter = collections.Counter()
        self._stops = 0

    def put(self, sid: int, owner: int) -> None:
        with self._cond:
            self._waiting.setdefault(owner, collections.deque()).append(sid)
            self._cond.notify_all()

    def get(self) -> tuple[int, int] | None:
        """The next (sid, owner), blocking; None once stop() asked this worker to end."""
        with self._cond:
            while True:
                if self._stops:
                    self._stops -= 1
                    return None
                owner = next((o for o in self._waiting if self._running[o] < self.cap), None)
                if owner is not None:
                    sids = self._waiting.pop(owner)    # re-inserted last: its turn is over
                    sid = sids.popleft()
                    if sids:
                        self._waiting[owner] = sids
                    self._running[owner] += 1
                    return sid, owner
                self._cond.wait()

    def done(self, owner: int) -> None:
        with self._cond:
            self._running[owner] -= 1
            self._cond.notify_all()

    def stop(self, n: int) -> None:
        with self._cond:
            self._stops += n
            self._cond.notify_all()


class Scorer:
    def __init__(self, settings: Settings, make_session: sessionmaker,
                 write_lock: threading.Lock | None = None):
        self.settings = settings
        self.make_session = make_session
        # the app's lock for all database writes; it also serializes every leaderboard update
        self.write_lock = write_lock or threading.Lock()
        self.data_dir = Path(settings.data_dir)
        self._queue = FairQueue(cap=max(1, settings.scoring_workers - 1))
        self._pending: set[int] = set()
        self._pending_lock = threading.Lock()
        self._faults: collections.Counter = collections.Counter()
        self._labels: dict[str, np.ndarray] = {}
        self._threads: list[threading.Thread] = []

    def start(self) -> int:
        """Empty the scratch folder, re-queue unfinished submissions (oldest first) and start
        the workers; returns how many were re-queued."""
        shutil.rmtree(storage.scratch_dir(self.data_dir), ignore_errors=True)   # a crash's leftovers
        with self.make_session() as s:
            rows = s.scalars(select(Submission).where(Submission.status.in_(("queued", "running")))
                             .order_by(Submission.id)).all()
            for row in rows:
                row.status = "queued"
            s.commit()
            resumed = [(row.id, row.competitor_id) for row in rows]
        for sid, owner in resumed:
            self.enqueue(sid, owner)
        for i in range(self.settings.scoring_workers):
            t = threading.Thread(target=self._work, name=f"ctf-scorer-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        if resumed:
            log.info("resumed %d unfinished scorings", len(resumed))
        return len(resumed)

    def stop(self, timeout: float = 5.0) -> None:
        self._queue.stop(len(self._threads))
        for t in self._threads:
            t.join(timeout)
        self._threads.clear()

    def check_upload(self, data: bytes, signature: Signature) -> None:
        """Validate an upload in the sandbox, with the scoring limits; raises validate.Refused."""
        st = self.settings
        check_upload(data, signature, work_dir=storage.scratch_dir(self.data_dir),
                     max_bytes=st.max_model_bytes, opset_min=st.opset_min, opset_max=st.opset_max,
                     timeout_s=st.score_timeout_s, memory_mb=st.score_memory_mb, cpu_s=st.score_cpu_s)

    def enqueue(self, submission_id: int, competitor_id: int | None = None) -> None:
        with self._pending_lock:
            if submission_id in self._pending:
                return
            self._pending.add(submission_id)
        if competitor_id is None:
            with self.make_session() as s:
                competitor_id = s.scalar(select(Submission.competitor_id).where(Submission.id == submission_id))
        self._queue.put(submission_id, competitor_id if competitor_id is not None else -1)

    def pending(self) -> int:
        with self._pending_lock:
            return len(self._pending)

    def _work(self) -> None:
        start_helpers()
        while True:
            item = self._queue.get()
            if item is None:
                close_helper()
                return
            sid, owner = item
            retry = False
            try:
                self.score(sid)
            except RefereeFault:     # the referee's fault: back to the queue, not the model's failure
                self._faults[sid] += 1
                log.warning("scoring submission %s: referee fault %d", sid, self._faults[sid])
                self._requeue(sid)
                retry = self._faults[sid] < FAULT_RETRIES
            except Exception:   # never let one submission stop the worker
                log.exception("scoring submission %s failed unexpectedly", sid)
                self._requeue(sid)   # retried at restart
            finally:
                with self._pending_lock:
                    self._pending.discard(sid)
                self._queue.done(owner)
            if retry:
                time.sleep(FAULT_PAUSE_S)
                self.enqueue(sid, owner)

    def score(self, sid: int) -> None:
        with self.write_lock, self.make_session() as s:
            sub = s.get(Submission, sid)
            if sub is None or sub.status not in ("queued", "running"):
                return
            task = s.get(Task, sub.task_id)
            sub.status, sub.attempts = "running", sub.attempts + 1
            s.commit()
            file_name, task_name, metric = sub.file_name, task.name, task.metric
            n_public, signature = task.n_public, Signature(task.input_dim, task.n_outputs)
        st = self.settings
        try:
            out = run_model(storage.model_path(self.data_dir, file_name),
                            storage.test_inputs_path(self.data_dir, task_name), signature=signature,
                            work_dir=storage.scratch_dir(self.data_dir), timeout_s=st.score_timeout_s,
                            memory_mb=st.score_memory_mb, cpu_s=st.score_cpu_s, batch_size=st.batch_size)
        except ScoringFailed as exc:
            self._mark_failed(sid, str(exc))
            return
        if task_name not in self._labels:
            self._labels[task_name] = storage.load_test_labels(self.data_dir, task_name)
        losses = per_example_loss(metric, out, self._labels[task_name])
        self._record(sid, losses[:n_public], losses[n_public:])

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

    def _mark_failed(self, sid: int, reason: str) -> None:
        with self.write_lock, self.make_session() as s:
            sub = s.get(Submission, sid)
            if sub is None or sub.status == "scored":
                return
            sub.status, sub.reason, sub.scored_at = "failed", reason[:500], utcnow()
            s.commit()

    def _requeue(self, sid: int) -> None:
        with self.write_lock, self.make_session() as s:
            sub = s.get(Submission, sid)
            if sub is not None and sub.status == "running":
                sub.status = "queued"
                s.commit()
