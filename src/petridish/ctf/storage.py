"""Files on disk: task arrays and submitted models, written durably (fsync file and folder).

Layout under data_dir: tasks/<task name>/{train.npz, test_x.npy, test_y.npy}, submissions/<hex>.onnx,
scratch/ (uploads being validated and the scoring processes' outputs; emptied at start-up).
Names on disk are never taken from a client: task names are checked against NAME_RE before they
reach a path, model files get random names.
"""
from __future__ import annotations

import io
import os
import re
import uuid
from pathlib import Path

import numpy as np

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
COMPETITOR_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def write_durably(path: Path, data: bytes) -> None:
    """Write to a temporary name, fsync, rename, fsync the folder: all or nothing, on disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **{k: np.ascontiguousarray(v) for k, v in arrays.items()})
    return buf.getvalue()


def task_dir(data_dir: Path, name: str) -> Path:
    if not NAME_RE.fullmatch(name):   # defence in depth: callers validate first
        raise ValueError("bad task name")
    return Path(data_dir) / "tasks" / name


def save_task_arrays(data_dir: Path, name: str, *, x_train, y_train, x_test, y_test) -> None:
    d = task_dir(data_dir, name)
    write_durably(d / "train.npz", npz_bytes(x_train=x_train, y_train=y_train))
    write_durably(d / "test_x.npy", npy_bytes(x_test))
    write_durably(d / "test_y.npy", npy_bytes(y_test))


def train_path(data_dir: Path, name: str) -> Path:
    return task_dir(data_dir, name) / "train.npz"


def test_inputs_path(data_dir: Path, name: str) -> Path:
    return task_dir(data_dir, name) / "test_x.npy"


def load_test_labels(data_dir: Path, name: str) -> np.ndarray:
    return np.load(task_dir(data_dir, name) / "test_y.npy", allow_pickle=False)


def new_model_name() -> str:
    return uuid.uuid4().hex + ".onnx"


def model_path(data_dir: Path, file_name: str) -> Path:
    if not re.fullmatch(r"[0-9a-f]{32}\.onnx", file_name):
        raise ValueError("bad model file name")
    return Path(data_dir) / "submissions" / file_name


def scratch_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "scratch"
