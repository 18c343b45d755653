"""Leaderboard mechanisms that resist probing (Blum & Hardt, ICML 2015), in loss units.

parameter-free Ladder: keep the best submission's per-example loss vector l_best and the
released score R. A new loss vector l is accepted (R <- mean(l), l_best <- l) only if
mean(l) < R - s/sqrt(n), with s = std(l - l_best) (std(l) for the first submission);
otherwise R stays. fixed-ladder: accept only if mean(l) < R - eta, and release R rounded to a
multiple of eta. naive: every submission releases its exact mean loss (comparison only).
All three then round the released value to `decimals` digits for display.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MODES = ("ladder", "fixed-ladder", "naive")


@dataclass
class LadderStep:
    released: float     # loss the board shows for this submission (before display rounding)
    accepted: bool      # whether this submission became the new best
    best_loss: float    # R after the step


def step(mode: str, losses: np.ndarray, best_losses: np.ndarray | None, best_loss: float | None,
         *, eta: float = 0.01) -> LadderStep:
    """One submission's update. losses (n,) float; best_* None before the first submission."""
    losses = np.asarray(losses, dtype=np.float64)
    mean = float(losses.mean())
    n = losses.shape[0]
    if mode == "naive":
        accepted = best_loss is None or mean < best_loss
        return LadderStep(mean, accepted, mean if accepted else best_loss)
    if mode == "ladder":
        if best_losses is None:
            accepted = True
        else:
            s = float(np.std(losses - best_losses, ddof=1)) if n > 1 else 0.0
            accepted = mean < best_loss - s / math.sqrt(n)
        r = mean if accepted else best_loss
        return LadderStep(r, accepted, r)
    if mode == "fixed-ladder":
        accepted = best_loss is None or mean < best_loss - eta
        r = round_to_step(mean, eta) if accepted else best_loss
        return LadderStep(r, accepted, r)
    raise ValueError(mode)


def round_to_step(x: float, eta: float) -> float:
    return round(round(x / eta) * eta, 12)


def replay(mode: str, loss_vectors, *, eta: float = 0.01) -> list[LadderStep]:
    """Run a sequence of per-example loss vectors through the mechanism."""
    best_l, best = None, None
    out = []
    for losses in loss_vectors:
        st = step(mode, losses, best_l, best, eta=eta)
        if st.accepted:
            best_l = np.asarray(losses, dtype=np.float64)
        best = st.best_loss
        out.append(st)
    return out


def pack(losses: np.ndarray) -> bytes:
    return np.asarray(losses, dtype="<f8").tobytes()


def unpack(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f8").copy()
