"""SQLAlchemy 2 models and the engine. Portable column types only (SQLite default, PostgreSQL works).

Tables: tasks, competitors, submissions, ladder_states (one row per task x competitor:
the Ladder's released score R and the best submission's public loss vector), web_sessions
(browser logins; logout deletes the row), invitations (single-use registration codes) and
referee_flags (settings an admin changes at run time: whether registration is open).
Only whole tables were ever added, so ``create_all`` upgrades an older database in place.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import (Float, ForeignKey, Integer, LargeBinary, String, Text, DateTime,
                        UniqueConstraint, create_engine, event)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from petridish.errors import PetridishError, one_line, shown_url


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)   # naive UTC everywhere


class Base(DeclarativeBase):
    pass


class Task(Base):
    __tablename__ = "tasks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    metric: Mapped[str] = mapped_column(String(32))          # accuracy | cross-entropy | mse
    leaderboard: Mapped[str] = mapped_column(String(32))     # ladder | fixed-ladder | naive
    eta: Mapped[float] = mapped_column(Float, default=0.01)  # fixed-ladder step
    decimals: Mapped[int] = mapped_column(Integer, default=5)
    daily_limit: Mapped[int] = mapped_column(Integer, default=20)
    input_dim: Mapped[int] = mapped_column(Integer)
    n_outputs: Mapped[int] = mapped_column(Integer)          # classes, or regression targets
    n_train: Mapped[int] = mapped_column(Integer)
    n_test: Mapped[int] = mapped_column(Integer)
    n_public: Mapped[int] = mapped_column(Integer)           # test rows [0, n_public) are public
    opens_at: Mapped[dt.datetime] = mapped_column(DateTime)
    closes_at: Mapped[dt.datetime] = mapped_column(DateTime)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Competitor(Base):
    __tablename__ = "competitors"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    token_id: Mapped[str] = mapped_column(String(16), unique=True, index=True)  # public prefix
    token_hash: Mapped[str] = mapped_column(String(64))      # sha256 hex of the whole token
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Submission(Base):
    __tablename__ = "submissions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)
    competitor_id: Mapped[int] = mapped_column(ForeignKey("competitors.id"), index=True)
    file_name: Mapped[str] = mapped_column(String(64))       # server-chosen, never the client's
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), index=True)   # queued | running | scored | failed
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    scored_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    ladder_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)  # order of ladder updates
    released: Mapped[float | None] = mapped_column(Float, nullable=True)    # displayed public score
    public_loss: Mapped[float | None] = mapped_column(Float, nullable=True)   # exact; never shown
    private_loss: Mapped[float | None] = mapped_column(Float, nullable=True)  # exact; after close only


class LadderState(Base):
    __tablename__ = "ladder_states"
    __table_args__ = (UniqueConstraint("task_id", "competitor_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)
    competitor_id: Mapped[int] = mapped_column(ForeignKey("competitors.id"))
    released_loss: Mapped[float] = mapped_column(Float)        # R, in loss units
    best_submission_id: Mapped[int] = mapped_column(Integer)
    best_losses: Mapped[bytes] = mapped_column(LargeBinary)   # float64 (n_public,) little-endian
    n_scored: Mapped[int] = mapped_column(Integer, default=0)  # ladder updates applied


class WebSession(Base):
    """A browser login: the cookie holds a random id; only its SHA-256 is stored."""
    __tablename__ = "web_sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sid_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    competitor_id: Mapped[int] = mapped_column(ForeignKey("competitors.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)


class Invitation(Base):
    """A single-use registration code issued by the admin; only its SHA-256 is stored."""
    __tablename__ = "invitations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime)
    used_by: Mapped[int | None] = mapped_column(ForeignKey("competitors.id"), nullable=True)


class RefereeFlag(Base):
    __tablename__ = "referee_flags"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


def make_engine(url: str, *, durable: bool = True) -> Engine:
    """An engine; for SQLite: WAL journal, a busy timeout and threads allowed.

    durable=True: every commit is on disk when it returns (the submission rows). durable=False
    (the scorer's status and Ladder updates): a commit survives a killed process but not a power
    cut; what such a cut loses is a 'scored' that reverts to 'running' and is scored again at
    start-up. Its commits skip the fsync, which on a slow disk is what keeps submit latency low.
    Only SQLite distinguishes the two.
    """
    try:
        engine = _engine(url, durable)
        Base.metadata.create_all(engine)
    except Exception as e:                 # a bad URL, a missing driver, a server that is down
        raise PetridishError(f"Could not open the referee's database at {shown_url(url)}: {one_line(e)}") from None
    return engine


def _engine(url: str, durable: bool) -> Engine:
    if url.startswith("sqlite"):
        # one connection per concurrent request thread (anyio runs up to 40) plus the scorers
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               pool_size=48, max_overflow=16, pool_timeout=60)

        @event.listens_for(engine, "connect")
        def _pragmas(conn, _record):   # WAL: readers never block the writer
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=20, max_overflow=20)   # always durable
    return engine


def default_url(data_dir: Path) -> str:
    return f"sqlite:///{Path(data_dir).resolve() / 'ctf.sqlite'}"


def make_sessionmaker(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)
