"""What a run records about where it ran, so a result can be traced and reproduced."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from typing import Any

import torch

import petridish
from petridish.device import describe


def git_commit() -> str | None:
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if out.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(*, seeds: list[int], executor: str, workers: int, device: str = "cpu") -> dict[str, Any]:
    return {
        "petridish": petridish.__version__,
        "git_commit": git_commit(),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cell_threads": 1,               # every executor runs each cell on one thread (lab.worker)
        "seeds": list(seeds),
        "executor": executor,
        "workers": workers,
        # where the cells were computed: CPU and CUDA cells differ in their last bits, so a
        # run is tied to its device (recorded here, not hashed into run ids or cell keys)
        "device": describe(device),
    }
