"""Learning-rate schedules as per-step multipliers on the base lr."""
from __future__ import annotations

import math

SCHEDULES = ("constant", "cosine", "step", "linear-warmup")


def lr_multiplier(schedule: str, step: int, total: int, *, warmup_fraction: float = 0.05) -> float:
    """Multiplier for update number ``step`` (0-based) out of ``total``.

    * constant: 1;
    * cosine: ½(1 + cos(π·step/total)) (no warmup);
    * step: 1, then 0.1 from 50% of the steps, 0.01 from 75%;
    * linear-warmup: (step+1)/W for the first W = max(1, round(warmup_fraction·total))
      steps, then 1.
    """
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * step / max(total, 1)))
    if schedule == "step":
        return 1.0 if step < 0.5 * total else (0.1 if step < 0.75 * total else 0.01)
    warm = max(1, int(round(warmup_fraction * total)))
    return min(1.0, (step + 1) / warm)
