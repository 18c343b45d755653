"""Where tensors are computed: ``with use_device("cuda"): ...`` / ``current_device()``.

The device is a context (a ``ContextVar``, so threads and asyncio tasks each see their
own), not an argument threaded through every experiment: the lab's worker enters
``use_device(task.device)`` around each task, and ``train``, ``train_ensemble``, the
kernels and the instruments move their inputs to :func:`target_device` — the device of
an input the caller already placed off the CPU, else the current device — and return
their results on the CPU. Outside any context the device is the CPU, the default and
the tested path.

"auto" means CUDA when ``torch.cuda.is_available()``, else the CPU. Asking for "cuda"
on a machine without it is bad input (:func:`resolve_device` raises one line).
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Iterator

import torch

from petridish.errors import PetridishError, check_choice

DEVICES = ("auto", "cpu", "cuda")
CPU = torch.device("cpu")
_current: ContextVar[torch.device] = ContextVar("petridish_device", default=CPU)


def resolve_device(name: str, owner: str = "run") -> str:
    """"auto" | "cpu" | "cuda" -> "cpu" or "cuda"; "cuda" without CUDA raises PetridishError."""
    check_choice(name, "device", owner, DEVICES)
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise PetridishError(f"The 'device' parameter of {owner} is 'cuda' but this torch ({torch.__version__}) "
                             "sees no CUDA device; use --device cpu or auto.")
    return name


@contextmanager
def use_device(name: str | torch.device) -> Iterator[torch.device]:
    """Compute on ``name`` ("auto", "cpu", "cuda", "cuda:1", or a torch.device) inside the block."""
    if isinstance(name, str) and name in DEVICES:
        name = resolve_device(name)
    token = _current.set(torch.device(name))
    try:
        yield _current.get()
    finally:
        _current.reset(token)


def current_device() -> torch.device:
    return _current.get()


def target_device(*tensors: Any) -> torch.device:
    """The device the caller chose (the first input tensor not on the CPU), else the current one."""
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.device.type != "cpu":
            return t.device
    return current_device()


def describe(name: str) -> str:
    """For provenance: "cpu", or "cuda (NVIDIA H200, CUDA 12.4)"."""
    if name != "cuda" or not torch.cuda.is_available():
        return name
    return f"cuda ({torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda})"
