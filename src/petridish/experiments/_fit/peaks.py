"""The seed-paired peak test of a curve over a size axis (model size, samples, p/n).

A curve is one metric per size and per seed, ``values[i] = {seed: value}`` in size order.
Cells with the same seed share their data draw and noise streams, so differences between
sizes are taken within a seed (``petridish.lab.paired``) and the seed-to-seed variation the
sizes have in common cancels.

* **Candidate**: the interior size i* maximizing the prominence of the mean curve,
  min(m_i − min m_<i, m_i − min m_>i). It is taken even when that prominence is negative
  (a monotone curve), so that the test below can refute a peak as well as support one.
* **Sides**: the left minimum j (lowest mean before i*) and the right minimum k (after it).
  The peak is claimed when *both* seed-paired differences v_i* − v_j and v_i* − v_k are
  above 0: an intersection–union test, whose p is the larger of the two one-sided p-values
  after Holm adjustment over the two comparisons (conservative for an intersection–union).
  The selection of i*, j and k from the same means biases both differences upwards; with
  3–5 seeds a sample split is not affordable, so this is stated in the claim's test string.
* **Ties**: sizes next to i* whose seed-paired difference to it has a 95% CI reaching 0 are
  statistically indistinguishable from the peak; the contiguous run of them is reported as
  the peak's location, "at w ∈ {36, 47, 61}", instead of one arbitrary argmax.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from petridish.lab.claims import Claim, from_difference, not_measured
from petridish.lab.multiplicity import holm
from petridish.lab.paired import PairedDifference, pair_by_seed, paired_difference


@dataclass(frozen=True)
class Peak:
    index: int                           # i*: the candidate peak (size order)
    ties: tuple[int, ...]                # contiguous sizes indistinguishable from i* (i* included)
    left: int                            # j: lowest mean before i*
    right: int                           # k: lowest mean after i*
    vs_left: PairedDifference | None     # v_i* − v_j over the seeds both have
    vs_right: PairedDifference | None    # v_i* − v_k
    prominence: float                    # min of the two mean differences


def _means(values: list[dict[int, float]]) -> np.ndarray:
    return np.array([np.mean([v for v in d.values() if v is not None and math.isfinite(v)])
                     if d else math.nan for d in values])


def find_peak(values: list[dict[int, float]]) -> Peak | None:
    """The candidate peak of a size-ordered curve with its seed-paired side tests; None with < 3 sizes."""
    m = _means(values)
    if m.size < 3 or np.isnan(m).all():
        return None
    prom = np.array([min(m[i] - np.nanmin(m[:i]), m[i] - np.nanmin(m[i + 1:])) for i in range(1, m.size - 1)])
    if np.isnan(prom).all():
        return None
    i = 1 + int(np.nanargmax(prom))
    left, right = int(np.nanargmin(m[:i])), i + 1 + int(np.nanargmin(m[i + 1:]))

    def vs(j: int) -> PairedDifference | None:
        return paired_difference(*pair_by_seed(values[i], values[j]))

    ties = [i]
    for step in (-1, 1):
        t = i + step
        while 0 <= t < m.size:
            d = vs(t)
            if d is None or d.ci[0] > 0:          # significantly below the peak: the run ends
                break
            ties.append(t)
            t += step
    return Peak(i, tuple(sorted(ties)), left, right, vs(left), vs(right), float(prom[i - 1]))


def location(pk: Peak, sizes, symbol: str) -> str:
    """'w = 47' or 'w ∈ {36, 47, 61}'."""
    at = [f"{sizes[t]:.4g}" for t in pk.ties]
    return f"{symbol} = {at[0]}" if len(at) == 1 else f"{symbol} ∈ {{{', '.join(at)}}}"


def peak_claim(claim: str, pk: Peak | None, sizes, symbol: str, *, margin: float | None = None,
               scale: str = "") -> Claim:
    """One claim "<metric> peaks at …": supported when the peak rises above both side minima.

    estimate = the smaller of the two mean differences; CI = (min of the lower ends, min of the
    upper ends) of the two seed-paired CIs, a ≥ 92.5% interval for min(Δ_left, Δ_right);
    ``margin``: a peak whose CI lies inside ±margin is refuted (too small to matter); ``scale``
    names a transform the values were tested on, e.g. "log(1 + excess risk)".
    """
    effect = "smaller rise over the two side minima" + (f" of {scale}" if scale else "")
    if pk is None:
        return not_measured(claim, "fewer than 3 sizes on the curve", effect=effect, margin=margin)
    sides = [from_difference("left", pk.vs_left, effect=""), from_difference("right", pk.vs_right, effect="")]
    if any(c.verdict == "not measured" for c in sides):
        return not_measured(claim, "fewer than 2 seeds measured at the peak and a side minimum",
                            effect=effect, margin=margin)
    adj = holm([c.p for c in sides])
    (dl, dr) = (pk.vs_left, pk.vs_right)
    test = (f"vs the left minimum at {symbol} = {sizes[pk.left]:.4g}: {dl.estimate:+.3g} "
            f"[{dl.ci[0]:+.3g}, {dl.ci[1]:+.3g}]; vs the right minimum at {symbol} = {sizes[pk.right]:.4g}: "
            f"{dr.estimate:+.3g} [{dr.ci[0]:+.3g}, {dr.ci[1]:+.3g}]; {dl.method}; intersection–union test, "
            f"Holm over the 2 comparisons; peak and minima chosen from the same means")
    return Claim(claim, min(dl.estimate, dr.estimate), (min(dl.ci[0], dr.ci[0]), min(dl.ci[1], dr.ci[1])),
                 test=test, p=max(adj), direction="greater", margin=margin, effect=effect)
