"""Group commit of submission rows: concurrent submits share one commit, and the daily limit
holds inside a batch (oracle: rows and commits counted in the database and by a commit hook)."""
import threading
import time

from sqlalchemy import event, func, select

from ctf_helpers import toy_arrays
from petridish.ctf.db import Competitor, Submission, make_engine, make_sessionmaker
from petridish.ctf.intake import Intake, NewSubmission
from petridish.ctf.tasks import create_task


def _setup(tmp_path, n_competitors):
    engine = make_engine(f"sqlite:///{tmp_path / 'ctf.sqlite'}")
    make_session = make_sessionmaker(engine)
    with make_session() as s:
        task = create_task(s, tmp_path, name="toy", daily_limit=3, **toy_arrays())
        comps = [Competitor(name=f"c{i}", token_id=f"{i:012d}", token_hash="0" * 64) for i in range(n_competitors)]
        s.add_all(comps)
        s.commit()
        return engine, make_session, task.id, [c.id for c in comps]


def test_concurrent_submissions_share_one_commit_and_respect_the_limit(tmp_path):
    engine, make_session, task_id, comp_ids = _setup(tmp_path, 4)
    commits = []
    event.listen(engine, "commit", lambda conn: commits.append(1))
    lock = threading.Lock()
    intake = Intake(make_session, lock)
    # 4 competitors x 5 submissions, limit 3: 12 accepted, 8 refused
    news = [NewSubmission(task_id, c, 3, f"{c:02d}{j:030d}.onnx", "0" * 64, 10)
            for c in comp_ids for j in range(5)]
    results = [None] * len(news)

    def submit(i):
        results[i] = intake.add(news[i])

    with lock:     # hold the writer lock until every request is waiting: one batch
        threads = [threading.Thread(target=submit, args=(i,)) for i in range(len(news))]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(intake._pending) < len(news) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(intake._pending) == len(news)
    for t in threads:
        t.join(30)
    assert len(commits) == 1                                   # 20 requests, one fsync'd commit
    accepted = [r for r in results if r is not None]
    assert len(accepted) == 12 and len({r.id for r in accepted}) == 12
    with make_session() as s:
        per_comp = dict(s.execute(select(Submission.competitor_id, func.count())
                                  .group_by(Submission.competitor_id)).all())
    assert per_comp == {c: 3 for c in comp_ids}


def test_a_later_batch_counts_rows_already_committed(tmp_path):
    _, make_session, task_id, (comp,) = _setup(tmp_path, 1)
    intake = Intake(make_session, threading.Lock())
    got = [intake.add(NewSubmission(task_id, comp, 3, f"{j:032d}.onnx", "0" * 64, 10)) for j in range(4)]
    assert [g is not None for g in got] == [True, True, True, False]
    assert got[0].status == "queued" and got[0].created_at is not None


def test_rows_commit_durably_scorer_updates_skip_the_fsync_and_all_writers_share_one_lock(tmp_path):
    from sqlalchemy import text

    from ctf_helpers import ADMIN
    from petridish.ctf import create_app, load_settings
    app = create_app(load_settings(admin_secret=ADMIN, data_dir=tmp_path / "ctf"))
    sync = {}
    for who, make in (("requests", app.state.make_session), ("scorer", app.state.scorer.make_session)):
        with make() as s:
            sync[who] = s.execute(text("PRAGMA synchronous")).scalar()
    assert sync == {"requests": 2, "scorer": 1}                    # FULL, NORMAL
    assert app.state.scorer.write_lock is app.state.write_lock is app.state.intake.write_lock
