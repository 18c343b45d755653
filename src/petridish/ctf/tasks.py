"""Creating tasks: from plain numpy arrays, or from a petridish data set (mnist1d).

The test set is shuffled once (split_seed) and cut into a public-leaderboard part (the first
n_public rows) and a private part. Test inputs and labels stay under data_dir on the server.
"""
from __future__ import annotations

import datetime as dt
import secrets
import tempfile
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from petridish.ctf import storage
from petridish.ctf.db import Task, utcnow
from petridish.ctf.ladder import MODES
from petridish.ctf.metrics import METRICS
from petridish.errors import PetridishError, check_choice, check_number, invalid

OWNER = "create_task"


def create_task(session: Session, data_dir: Path, *, name: str, x_train, y_train, x_test, y_test,
                metric: str = "accuracy", leaderboard: str = "ladder", description: str = "",
                public_fraction: float = 0.5, split_seed: int = 0, daily_limit: int = 20,
                decimals: int = 5, eta: float = 0.01, opens_at: dt.datetime | None = None,
                closes_at: dt.datetime | None = None, n_classes: int | None = None) -> Task:
    """Validate, store the arrays durably, then the task row. Raises PetridishError on bad input."""
    if not isinstance(name, str) or not storage.NAME_RE.fullmatch(name):
        raise invalid("name", OWNER, "1 to 64 characters from a-z, 0-9, '-' and '_', starting "
                      "with a letter or digit", name)
    check_choice(metric, "metric", OWNER, METRICS)
    check_choice(leaderboard, "leaderboard", OWNER, MODES)
    public_fraction = check_number(public_fraction, "public_fraction", OWNER, low=0, high=1,
                                   low_open=True, high_open=True)
    daily_limit = check_number(daily_limit, "daily_limit", OWNER, kind=int, low=1)
    decimals = check_number(decimals, "decimals", OWNER, kind=int, low=0, high=10)
    eta = check_number(eta, "eta", OWNER, low=0, low_open=True)
    split_seed = check_number(split_seed, "split_seed", OWNER, kind=int, low=0)
    if not isinstance(description, str) or len(description) > 20000:
        raise invalid("description", OWNER, "a string of at most 20000 characters", type(description).__name__)
    x_train, x_test = _features(x_train, "x_train"), _features(x_test, "x_test")
    if x_train.shape[1] != x_test.shape[1]:
        raise invalid("x_test", OWNER, f"an array with {x_train.shape[1]} columns like x_train",
                      f"shape {x_test.shape}")
    y_train, y_test, n_out = _targets(metric, y_train, y_test, x_train, x_test, n_classes)
    n_public = int(round(public_fraction * len(x_test)))
    if not 1 <= n_public < len(x_test):
        raise invalid("x_test", OWNER, "a test set large enough for a public and a private part",
                      f"{len(x_test)} rows")
    perm = np.random.default_rng(split_seed).permutation(len(x_test))
    x_test, y_test = x_test[perm], y_test[perm]
    opens_at = opens_at or utcnow()
    closes_at = closes_at or (opens_at + dt.timedelta(days=30))
    if closes_at <= opens_at:
        raise invalid("closes_at", OWNER, f"after opens_at ({opens_at:%Y-%m-%d %H:%M})", str(closes_at))
    if session.scalar(select(Task.id).where(Task.name == name)) is not None:
        raise PetridishError(f"The 'name' parameter of {OWNER} must be a new task name. Got {name!r}, "
                             "which already exists.")
    storage.save_task_arrays(data_dir, name, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    task = Task(name=name, description=description, metric=metric, leaderboard=leaderboard, eta=eta,
                decimals=decimals, daily_limit=daily_limit, input_dim=int(x_train.shape[1]),
                n_outputs=n_out, n_train=len(x_train), n_test=len(x_test), n_public=n_public,
                opens_at=opens_at, closes_at=closes_at)
    session.add(task)
    session.commit()
    return task


def _features(x, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1 or not np.issubdtype(x.dtype, np.number):
        raise invalid(name, OWNER, "a numeric 2-D array (n, d)", f"dtype {x.dtype}, shape {x.shape}")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise invalid(name, OWNER, "an array of finite numbers", "NaN or Inf values")
    return x


def _targets(metric, y_train, y_test, x_train, x_test, n_classes):
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    for nm, y, x in (("y_train", y_train, x_train), ("y_test", y_test, x_test)):
        if y.shape[0] != x.shape[0]:
            raise invalid(nm, OWNER, f"{x.shape[0]} rows like its inputs", f"shape {y.shape}")
    if metric == "mse":
        if y_train.ndim not in (1, 2) or y_train.ndim != y_test.ndim or y_train.shape[1:] != y_test.shape[1:]:
            raise invalid("y_test", OWNER, "targets of shape (n,) or (n, k) matching y_train", f"shape {y_test.shape}")
        n_out = 1 if y_train.ndim == 1 else y_train.shape[1]
        return y_train.astype(np.float32), y_test.astype(np.float32), int(n_out)
    for nm, y in (("y_train", y_train), ("y_test", y_test)):
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
            raise invalid(nm, OWNER, "integer class labels >= 0 of shape (n,)", f"dtype {y.dtype}, shape {y.shape}")
    n_out = int(max(y_train.max(), y_test.max()) + 1) if n_classes is None else int(n_classes)
    if n_out < 2 or max(y_train.max(), y_test.max()) >= n_out:
        raise invalid("n_classes", OWNER, "at least 2 and above every label", n_out)
    return y_train.astype(np.int64), y_test.astype(np.int64), n_out


def mnist1d_arrays(*, n_train: int = 4000, n_test: int = 1000, seed: int | None = None) -> dict:
    """x/y train/test numpy arrays of petridish's MNIST-1D.

    seed None (the referee's default): the training and the test set are generated from two
    secret seeds drawn here (never stored, never written to the data cache), so nobody can
    regenerate the test set, not even from the public training set. An explicit seed gives the
    reproducible split of that seed (42: MNIST-1D's public default split).
    """
    from petridish.data import mnist1d
    if seed is not None:
        ds = mnist1d(n_train=n_train, n_test=n_test, seed=seed)
        return {"x_train": ds.x_train.numpy(), "y_train": ds.y_train.numpy(),
                "x_test": ds.x_test.numpy(), "y_test": ds.y_test.numpy()}
    rng = secrets.SystemRandom()
    train_seed, test_seed = rng.sample(range(2**32), 2)
    with tempfile.TemporaryDirectory(prefix="petridish-ctf-") as scratch:   # no cache of secret data
        train = mnist1d(n_train=n_train, n_test=0, seed=train_seed, cache_dir=scratch)
        test = mnist1d(n_train=n_test, n_test=0, seed=test_seed, cache_dir=scratch)
    return {"x_train": train.x_train.numpy(), "y_train": train.y_train.numpy(),
            "x_test": test.x_train.numpy(), "y_test": test.y_train.numpy()}
