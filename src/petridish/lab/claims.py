"""Claims: a statement an experiment makes about its numbers, with the evidence for it.

A claim names the phenomenon it tests, positively ("test error peaks at w = 47"), and carries
the effect measured against its null (``estimate``, e.g. peak minus side), its CI, the test
used and its p-value where one applies. The verdict is computed from these, never written:

=============  ==============================================================================
direction      verdict
=============  ==============================================================================
``greater``    **supported** when the CI lies above the null (and p ≤ α where a p is given);
``less``       mirror image; **refuted** when the CI lies on the other side of the null, or
               inside the equivalence band null ± ``margin`` when a margin is stated (a
               significant but negligible effect is refuted: the margin is the smallest
               effect that counts)
``two-sided``  **supported** when the CI excludes the null; **refuted** inside null ± margin
``within``     **supported** when the CI lies inside null ± margin (the claim is closeness,
               e.g. "λ_max hovers at 2/η"); **refuted** when it lies wholly outside
=============  ==============================================================================

Otherwise the verdict is **inconclusive**. A claim whose quantity could not be measured (a run
that never fitted, too few points for the test) has verdict **not measured** and a ``reason``;
its finding says so and never prints ``nan``.

Multiplicity: ``family(claims)`` adjusts the p-values of claims that scan many points or
measures (Holm by default), and the verdicts use the adjusted p. Findings are generated from
the claim (``Claim.finding``), so a sentence can never state more than its verdict.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Iterable, Sequence

from petridish.lab.multiplicity import bh, holm
from petridish.lab.paired import PairedDifference
from petridish.lab.ranks import RankCorrelation
from petridish.lab.stats import mean_ci

VERDICTS = ("supported", "refuted", "inconclusive", "not measured")
DIRECTIONS = ("greater", "less", "two-sided", "within")


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class Claim:
    claim: str                                  # the phenomenon, stated positively
    estimate: float | None                      # the effect measured against the null
    ci: tuple[float, float] | None              # its CI at ``level``
    test: str = ""                              # how the CI (and p) were obtained
    p: float | None = None                      # p of the null, in the claimed direction (adjusted in a family)
    null: float = 0.0
    direction: str = "greater"
    margin: float | None = None                 # equivalence margin / band half-width
    effect: str = ""                            # what ``estimate`` is, e.g. "peak minus left minimum"
    level: float = 0.95
    alpha: float = 0.05
    reason: str | None = None                   # why it was not measured

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise ValueError(f"The 'direction' parameter of Claim must be one of {', '.join(DIRECTIONS)}. "
                             f"Got {self.direction!r}.")
        if self.direction == "within" and self.margin is None:
            raise ValueError("The 'margin' parameter of Claim must be a float > 0 when direction is 'within'. Got None.")

    @property
    def measured(self) -> bool:
        return (self.reason is None and _finite(self.estimate) and self.ci is not None
                and _finite(self.ci[0]) and _finite(self.ci[1]))

    @property
    def verdict(self) -> str:
        if not self.measured:
            return "not measured"
        lo, hi = self.ci
        z, m = self.null, self.margin
        p_ok = self.p is None or self.p <= self.alpha
        inside = m is not None and z - m <= lo and hi <= z + m
        if self.direction == "within":
            if inside:
                return "supported"
            return "refuted" if (lo > z + m or hi < z - m) else "inconclusive"
        if self.direction == "greater":
            excl, opposite = lo > z, hi < z
        elif self.direction == "less":
            excl, opposite = hi < z, lo > z
        else:
            excl, opposite = (lo > z or hi < z), False
        if inside or opposite:       # an effect inside the stated margin is too small to count
            return "refuted"
        if excl and p_ok:
            return "supported"
        return "inconclusive"

    def finding(self) -> str:
        v = self.verdict
        if v == "not measured":
            return f"Not measured: {self.claim} — {self.reason or 'no finite estimate'}."
        lo, hi = self.ci
        signed = self.direction in ("greater", "less", "two-sided") and self.null == 0
        est = _num(self.estimate, signed)
        parts = [f"{self.effect or 'estimate'} {est} ({self.level:.0%} CI [{_num(lo)}, {_num(hi)}])"]
        if self.direction == "within":
            parts.append(f"band {_num(self.null)} ± {_num(self.margin)}")
        elif self.null != 0:
            parts.append(f"null {_num(self.null)}")
        tail = self.test
        if self.p is not None:
            tail = (tail + ", " if tail else "") + f"p = {self.p:.2g}"
        return f"{v.capitalize()}: {self.claim} — " + "; ".join(parts) + (f"; {tail}" if tail else "") + "."

    def to_json(self) -> dict[str, Any]:
        """The stable JSON shape: claim, verdict, estimate, ci, test, p (+ null, direction, reason)."""
        m = self.measured
        return {"claim": self.claim, "verdict": self.verdict,
                "estimate": self.estimate if m else None,
                "ci": [self.ci[0], self.ci[1]] if m else None,
                "test": self.test, "p": self.p if _finite(self.p) else None,
                "null": self.null, "direction": self.direction, "margin": self.margin,
                "effect": self.effect, "reason": self.reason if not m else None}


def _num(x: float | None, signed: bool = False) -> str:
    if not _finite(x):
        return "—"
    a = abs(x)
    s = f"{x:+.3g}" if signed else f"{x:.3g}"
    if a != 0 and (a >= 1e5 or a < 1e-3):
        s = f"{x:+.2e}" if signed else f"{x:.2e}"
    return s


def not_measured(claim: str, reason: str, **kw) -> Claim:
    return Claim(claim, None, None, reason=reason, **kw)


# ---------------------------------------------------------------- builders from the statistics

def from_difference(claim: str, diff: PairedDifference | None, *, effect: str, direction: str = "greater",
                    margin: float | None = None, reason: str = "fewer than 2 seeds with both values") -> Claim:
    """A claim on a seed-paired difference (``petridish.lab.paired``); the null is 0."""
    if diff is None:
        return not_measured(claim, reason, effect=effect, direction=direction, margin=margin)
    p = diff.p_greater if direction == "greater" else diff.p_less if direction == "less" else \
        min(1.0, 2 * min(diff.p_greater, diff.p_less))
    return Claim(claim, diff.estimate, diff.ci, test=diff.method, p=p if direction != "within" else None,
                 direction=direction, margin=margin, effect=effect)


def from_correlation(claim: str, rc: RankCorrelation, *, effect: str | None = None,
                     direction: str = "two-sided", margin: float | None = None) -> Claim:
    """A trend claim on a rank correlation (``petridish.lab.ranks``); the null is 0."""
    symbol = "Spearman ρ" if rc.method == "spearman" else "Kendall τ"
    if rc.reason is not None:
        return not_measured(claim, rc.reason, effect=effect or symbol, direction=direction, margin=margin)
    return Claim(claim, rc.estimate, rc.ci, test=rc.test, p=rc.p, direction=direction, margin=margin,
                 effect=effect or symbol)


def from_values(claim: str, values: Iterable[float], *, null: float, effect: str, direction: str = "greater",
                margin: float | None = None, bounds: tuple[float, float] | None = None,
                subtract_null: bool = True) -> Claim:
    """A claim on the mean of per-seed values against ``null`` (Student t; clipped to ``bounds``).

    With ``subtract_null`` the estimate is mean − null (e.g. "training accuracy minus the fit
    threshold") and the null becomes 0; otherwise the estimate is the mean itself.
    """
    v = [x for x in values if _finite(x)]
    if len(v) < 2:
        return not_measured(claim, f"{len(v)} finite value(s); a CI needs at least 2 seeds",
                            effect=effect, direction=direction, margin=margin)
    m, lo, hi = mean_ci(v, bounds=bounds)
    from scipy import stats as _st
    import numpy as np
    sd = float(np.std(v, ddof=1))
    n = len(v)
    if sd == 0:
        p = 0.0 if ((m > null) if direction == "greater" else (m < null) if direction == "less" else m != null) else 1.0
    else:
        t = (m - null) / (sd / math.sqrt(n))
        p = float(_st.t.sf(t, n - 1)) if direction == "greater" else float(_st.t.cdf(t, n - 1)) \
            if direction == "less" else float(2 * _st.t.sf(abs(t), n - 1))
    test = f"t-interval over {n} seeds" + (f", clipped to [{bounds[0]:g}, {bounds[1]:g}]" if bounds else "")
    if direction == "within":
        p = None
    if subtract_null:
        return Claim(claim, m - null, (lo - null, hi - null), test=test, p=p, null=0.0, direction=direction,
                     margin=margin, effect=effect)
    return Claim(claim, m, (lo, hi), test=test, p=p, null=null, direction=direction, margin=margin, effect=effect)


def family(claims: Sequence[Claim], method: str = "holm") -> list[Claim]:
    """Adjust the p-values of a family of claims (those with a p) for multiplicity."""
    idx = [i for i, c in enumerate(claims) if c.p is not None and c.measured]
    if len(idx) < 2:
        return list(claims)
    adj = (holm if method == "holm" else bh)([claims[i].p for i in idx])
    name = "Holm" if method == "holm" else "Benjamini–Hochberg"
    out = list(claims)
    for i, q in zip(idx, adj):
        c = claims[i]
        out[i] = replace(c, p=q, test=(c.test + "; " if c.test else "") + f"{name}-adjusted over {len(idx)} claims")
    return out


def findings_of(claims: Sequence[Claim]) -> list[str]:
    return [c.finding() for c in claims]
