"""Leaderboard mechanisms that resist probing (Blum & Hardt, ICML 2015), in loss units.

parameter-free Ladder: keep the best submission's per-example loss vector l_best. A new loss
vector l is accepted (l_best <- l) only if mean(l) < mean(l_best) - s/sqrt(n), with
s = std(l - l_best) (ddof 1); otherwise the board keeps its value. The first submission is
always accepted. Every release, the first included, is rounded to the release grid: the
1-2-5 number at or below one standard error of a mean of n losses (0.5/sqrt(n) for 0-1
losses, its largest value, so the grid does not depend on the data; std(l)/sqrt(n) for other
losses). A new competitor's first score is therefore never exact: a single-example change
(1/n) moves it across a grid line with probability at most 2/sqrt(n).

fixed-ladder: accept only if mean(l) < R - eta, and release R rounded to a multiple of eta.
naive: every submission releases its exact mean loss (comparison only).

Arithmetic. For 0-1 losses (the accuracy metric) the Ladder's test is decided in integers:
with B and E the error counts of l_best and l and a the number of examples on which they
differ, mean(l) < mean(l_best) - s/sqrt(n)  <=>  B - E > 0 and (B - E)^2 > a  (exactly; the
algebra is in ``_binary_accepts``). For other losses, and for the fixed-ladder, the gain must
exceed the threshold by more than TOLERANCE times the loss scale (max(1, |R|)), so that a
tie up to floating-point rounding is never accepted.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

MODES = ("ladder", "fixed-ladder", "naive")
TOLERANCE = 1e-9


@dataclass
class LadderStep:
    released: float     # loss the board shows for this submission (before display rounding)
    accepted: bool      # whether this submission became the new best
    best_loss: float    # R after the step (what the board shows for the competitor)


def step(mode: str, losses: np.ndarray, best_losses: np.ndarray | None, best_loss: float | None,
         *, eta: float = 0.01) -> LadderStep:
    """One submission's update. losses (n,) float; best_* None before the first submission."""
    losses = np.asarray(losses, dtype=np.float64)
    mean = float(losses.mean())
    if mode == "naive":
        accepted = best_loss is None or mean < best_loss
        return LadderStep(mean, accepted, mean if accepted else best_loss)
    if mode == "ladder":
        accepted = best_losses is None or _ladder_accepts(losses, np.asarray(best_losses, np.float64))
        r = round_to_step(_exact_mean(losses), release_grid(losses)) if accepted else best_loss
        return LadderStep(r, accepted, r)
    if mode == "fixed-ladder":
        accepted = best_loss is None or _beats(best_loss - eta - mean, best_loss)
        r = round_to_step(_exact_mean(losses), eta) if accepted else best_loss
        return LadderStep(r, accepted, r)
    raise ValueError(mode)


def _is_binary(losses: np.ndarray) -> bool:
    return bool(np.all((losses == 0.0) | (losses == 1.0)))


def _exact_mean(losses: np.ndarray) -> Fraction | float:
    return Fraction(int(losses.sum()), len(losses)) if _is_binary(losses) else float(losses.mean())


def _ladder_accepts(losses: np.ndarray, best: np.ndarray) -> bool:
    n = len(losses)
    if _is_binary(losses) and _is_binary(best):
        return _binary_accepts(int(best.sum()), int(losses.sum()), int(np.count_nonzero(losses != best)))
    gain = float(best.mean() - losses.mean())
    s = float(np.std(losses - best, ddof=1)) if n > 1 else 0.0
    return _beats(gain - s / math.sqrt(n), float(best.mean()))


def _binary_accepts(best_errors: int, errors: int, differing: int) -> bool:
    """The Ladder's test for 0-1 losses in integers.

    d = l - l_best has `differing` entries of +-1 and sum D = E - B, so
    (n-1) s^2 = a - D^2/n. mean(l) < mean(l_best) - s/sqrt(n)  <=>  B - E > s sqrt(n)
    <=>  B - E > 0 and (B - E)^2 (n-1) > n a - D^2  <=>  B - E > 0 and (B - E)^2 > a.
    """
    gain = best_errors - errors
    return gain > 0 and gain * gain > differing


def _beats(margin: float, scale: float) -> bool:
    """margin > 0, beyond floating-point rounding: by more than TOLERANCE * max(1, |scale|)."""
    return margin > TOLERANCE * max(1.0, abs(scale))


def release_grid(losses: np.ndarray) -> float:
    """The step the Ladder rounds a release to: 1-2-5 at or below one standard error (0: none)."""
    n = len(losses)
    sigma = 0.5 if _is_binary(losses) else (float(np.std(losses, ddof=1)) if n > 1 else 0.0)
    return nice_floor(sigma / math.sqrt(n)) if sigma > 0 else 0.0


def nice_floor(x: float) -> float:
    """The largest number of the form {1, 2, 5} x 10^k that is <= x (x > 0)."""
    k = math.floor(math.log10(x))
    for m in (5, 2, 1):
        if m * 10.0 ** k <= x * (1 + 1e-12):
            return float(f"{m}e{k}")
    return float(f"5e{k - 1}")


def round_to_step(x: float | Fraction, eta: float) -> float:
    """x rounded to the nearest multiple of eta (exactly, half to even); eta 0: x unchanged."""
    if eta <= 0:
        return float(x)
    g = Fraction(repr(float(eta)))
    return round(float(round(Fraction(x) / g) * g), 12)


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
