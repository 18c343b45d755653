"""Membership inference: does a trained model give away which examples it was trained on?

An attack gives every candidate example a **score**, higher meaning "more likely a member" (a
training example). Given the true membership, ``attack_metrics`` reports

* **AUC**: P(score of a random member > score of a random non-member), ties counting ½ (the
  Mann–Whitney statistic; equals ``sklearn.metrics.roc_auc_score``), with DeLong's CI;
* **advantage**: max over thresholds of TPR − FPR (Yeom et al. 2018's membership advantage at the
  best threshold, i.e. the Kolmogorov–Smirnov distance between the two score distributions; an
  upper bound for any single-threshold attack on these scores);
* **TPR at FPR α** (α = 1%, 0.1%: Carlini et al. 2022): the largest TPR over thresholds whose FPR
  is ≤ α. With n non-members the FPR moves in steps of 1/n, so α < 1/n means FPR = 0 exactly;

the last two with a percentile bootstrap CI that resamples members and non-members separately
(seeded; the group sizes stay fixed).

Attacks (scores from logits, so any PyTorch classifier works):

* ``loss_threshold_attack`` (Yeom, Giacomelli, Fredrikson & Jha 2018): score = −loss.
* ``shadow_attack`` (Shokri, Stronati, Song & Shmatikov 2017): shadow models trained like the
  target on data of their own (in) and evaluated on held-out data (out) label an attack training
  set; a classifier on the outputs learns in vs out. Shokri et al. train one attack model per
  class on the whole probability vector; here one logistic regression takes label-aware features
  (``attack_features``), which makes the per-class split unnecessary.
* ``lira_scores`` (Carlini, Chien, Nasr, Song, Terzis & Tramèr 2022, "LiRA"): per example, Gaussian
  fits of the shadow models' logit-scaled confidence φ = log(p_y / (1 − p_y)) when the example was
  in (μ_in, σ_in) and out (μ_out, σ_out) of their training set. Online (both fits available): the
  log likelihood ratio; offline (out-shadows only): the standardized distance (φ − μ_out)/σ_out,
  monotone in the one-sided Gaussian test. ``global_variance`` pools σ over examples, as Carlini et
  al. recommend with few shadows.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from scipy import stats as _st
from torch import nn

from petridish.errors import check_number, invalid
from petridish.instruments.estimate import Estimate
from petridish.losses import per_example

FPRS = (0.01, 0.001)
OWNER_METRICS = "attack_metrics"


@dataclass(frozen=True)
class AttackResult:
    """One attack's success against one model. ``tpr_at_fpr`` maps α to the TPR at FPR ≤ α."""

    attack: str
    auc: Estimate
    advantage: Estimate
    tpr_at_fpr: dict[float, Estimate]
    n_members: int
    n_nonmembers: int
    scores: np.ndarray = field(repr=False, compare=False, default=None)     # members first, then non-members

    def metrics(self, prefix: str) -> dict[str, float]:
        """Flat cell metrics: {prefix}_auc(_lo/_hi), {prefix}_advantage(...), {prefix}_tpr_at_1pct(...) …"""
        out = {**self.auc.as_dict(f"{prefix}_auc"), **self.advantage.as_dict(f"{prefix}_advantage")}
        for a, e in self.tpr_at_fpr.items():
            out.update(e.as_dict(f"{prefix}_tpr_at_{_pct(a)}"))
        return out


def _pct(a: float) -> str:
    """0.01 -> '1pct', 0.001 -> '0.1pct'."""
    return f"{100 * a:g}pct"


# ------------------------------------------------------------------ metrics of a score vector

def _check_scores(scores, is_member, owner: str) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores.detach().cpu() if isinstance(scores, torch.Tensor) else scores, dtype=float)
    m = np.asarray(is_member.detach().cpu() if isinstance(is_member, torch.Tensor) else is_member)
    if s.ndim != 1 or s.size < 2:
        raise invalid("scores", owner, "a 1-d array of at least 2 scores", f"shape {s.shape}")
    if not np.isfinite(s).all():
        raise invalid("scores", owner, "finite (no NaN or inf)", f"{int((~np.isfinite(s)).sum())} non-finite values")
    if m.shape != s.shape or not np.isin(m, (0, 1)).all():
        raise invalid("is_member", owner, f"a bool array of shape {s.shape}", f"shape {m.shape}")
    m = m.astype(bool)
    if m.all() or not m.any():
        raise invalid("is_member", owner, "True for some examples and False for others", f"{int(m.sum())} of {m.size}")
    return s, m


def roc_auc(scores, is_member) -> float:
    """P(member score > non-member score) + ½ P(tie), from midranks (= sklearn's roc_auc_score)."""
    s, m = _check_scores(scores, is_member, "roc_auc")
    r = _st.rankdata(s)
    n1, n0 = int(m.sum()), int((~m).sum())
    return float((r[m].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def delong_ci(scores, is_member, level: float = 0.95) -> tuple[float, float, float]:
    """(AUC, low, high): DeLong, DeLong & Clarke-Pearson (1988) variance from placement values,
    normal interval clipped to [0, 1]."""
    s, m = _check_scores(scores, is_member, "delong_ci")
    x, y = s[m], s[~m]
    n1, n0 = x.size, y.size
    r = _st.rankdata(s)
    v10 = (r[m] - _st.rankdata(x)) / n0                 # (n1,) share of non-members each member beats
    v01 = 1 - (r[~m] - _st.rankdata(y)) / n1            # (n0,) share of members that beat each non-member
    auc = float(v10.mean())
    var = (v10.var(ddof=1) / n1 if n1 > 1 else 0.0) + (v01.var(ddof=1) / n0 if n0 > 1 else 0.0)
    half = float(_st.norm.ppf(0.5 + level / 2)) * math.sqrt(max(var, 0.0))
    return auc, max(0.0, auc - half), min(1.0, auc + half)


def _roc_stats(s: np.ndarray, member: np.ndarray, fprs: Sequence[float],
               weights: np.ndarray | None = None) -> np.ndarray:
    """max(TPR − FPR) and TPR at FPR ≤ α for each α, over the thresholds between distinct scores
    (and the all-negative point). Scores s (N,) with member labels (N,); ``weights`` (B, N) are
    example multiplicities (a bootstrap resample is a row of counts), None = each example once.
    Returns (B, 1 + len(fprs)) (B = 1 without weights)."""
    order = np.argsort(-s, kind="stable")
    ss, ls = s[order], member[order]
    w = np.ones((1, s.size)) if weights is None else weights[:, order]
    tp = np.cumsum(np.where(ls, w, 0), 1)
    fp = np.cumsum(np.where(ls, 0, w), 1)
    tpr, fpr = tp / tp[:, -1:], fp / fp[:, -1:]
    end = np.ones(s.size, bool)                          # last position of each block of tied scores
    end[:-1] = ss[:-1] != ss[1:]
    tpr, fpr = tpr[:, end], fpr[:, end]
    out = np.empty((w.shape[0], 1 + len(fprs)))
    out[:, 0] = np.maximum((tpr - fpr).max(1), 0.0)
    for j, a in enumerate(fprs):
        out[:, 1 + j] = np.where(fpr <= a + 1e-12, tpr, 0.0).max(1)
    return out


def advantage(scores, is_member) -> float:
    """max over thresholds of TPR − FPR (≥ 0: the threshold above every score gives 0)."""
    s, m = _check_scores(scores, is_member, "advantage")
    return float(_roc_stats(s, m, ())[0, 0])


def tpr_at_fpr(scores, is_member, fpr: float) -> float:
    """The largest TPR over thresholds whose FPR is ≤ ``fpr``."""
    fpr = check_number(fpr, "fpr", "tpr_at_fpr", low=0, high=1, low_open=True, high_open=True)
    s, m = _check_scores(scores, is_member, "tpr_at_fpr")
    return float(_roc_stats(s, m, (fpr,))[0, 1])


def attack_metrics(scores, is_member, *, attack: str = "scores", fprs: Sequence[float] = FPRS,
                   level: float = 0.95, n_boot: int = 1000, seed: int = 0) -> AttackResult:
    """AUC (DeLong CI), advantage and TPR at each FPR in ``fprs`` (stratified percentile bootstrap
    CI, ``n_boot`` resamples seeded by ``seed``) of ``scores`` (n,) against ``is_member`` (n,)."""
    s, m = _check_scores(scores, is_member, OWNER_METRICS)
    level = check_number(level, "level", OWNER_METRICS, low=0, high=1, low_open=True, high_open=True)
    n_boot = check_number(n_boot, "n_boot", OWNER_METRICS, kind=int, low=10)
    seed = check_number(seed, "seed", OWNER_METRICS, kind=int, low=0)
    if isinstance(fprs, (int, float)) or len(fprs) == 0:
        raise invalid("fprs", OWNER_METRICS, "a non-empty sequence of floats > 0 and < 1", fprs)
    fprs = tuple(check_number(a, "fprs", OWNER_METRICS, low=0, high=1, low_open=True, high_open=True) for a in fprs)
    # members first, then non-members
    s = np.concatenate([s[m], s[~m]])
    n1, n0 = int(m.sum()), int((~m).sum())
    lab = np.arange(s.size) < n1
    point = _roc_stats(s, lab, fprs)[0]
    # a stratified resample = multinomial counts of the members (n1 draws) and non-members (n0)
    g = np.random.default_rng(seed)
    counts = np.concatenate([g.multinomial(n1, np.full(n1, 1 / n1), size=n_boot),
                             g.multinomial(n0, np.full(n0, 1 / n0), size=n_boot)], axis=1)
    boot = np.concatenate([_roc_stats(s, lab, fprs, counts[a:a + 256]) for a in range(0, n_boot, 256)])
    q = ((1 - level) / 2, (1 + level) / 2)
    how = f"stratified bootstrap over examples (B = {n_boot}), percentile"

    def est(j: int) -> Estimate:
        lo, hi = np.quantile(boot[:, j], q)
        return Estimate(float(point[j]), (float(lo), float(hi)), how, level)

    auc, lo, hi = delong_ci(s, lab, level)
    return AttackResult(attack=attack, auc=Estimate(auc, (lo, hi), "DeLong", level), advantage=est(0),
                        tpr_at_fpr={a: est(1 + j) for j, a in enumerate(fprs)}, n_members=n1, n_nonmembers=n0,
                        scores=s)


# ------------------------------------------------------------------ model outputs

@torch.no_grad()
def model_logits(model: nn.Module, x: torch.Tensor, *, batch_size: int = 4096) -> torch.Tensor:
    """(n, classes) float64 logits of ``model`` in eval mode (its mode is restored)."""
    if not isinstance(model, nn.Module):
        raise invalid("model", "model_logits", "a torch.nn.Module", type(model).__name__)
    was = model.training
    model.eval()
    try:
        out = torch.cat([model(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)])
    finally:
        model.train(was)
    return out.detach().to("cpu", torch.float64)


def _check_logits(logits: torch.Tensor, labels: torch.Tensor, owner: str) -> None:
    if not isinstance(logits, torch.Tensor) or logits.dim() < 2:
        raise invalid("logits", owner, "a tensor (..., n, classes)", type(logits).__name__)
    if not isinstance(labels, torch.Tensor) or labels.shape != logits.shape[-2:-1] or labels.is_floating_point():
        raise invalid("labels", owner, f"an int tensor of shape ({logits.shape[-2]},)",
                      tuple(labels.shape) if isinstance(labels, torch.Tensor) else labels)


def losses_from_logits(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each example: logits (..., n, C), labels (n,) -> (..., n) float64."""
    _check_logits(logits, labels, "losses_from_logits")
    z = logits.double()
    return per_example(z, labels.expand(z.shape[:-1]), "cross_entropy")


def logit_confidence(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """φ = log(p_y / (1 − p_y)) = z_y − logsumexp_{j≠y} z_j, stable for p_y near 0 or 1:
    logits (..., n, C), labels (n,) -> (..., n) float64."""
    _check_logits(logits, labels, "logit_confidence")
    z = logits.double()
    idx = labels.expand(z.shape[:-1]).unsqueeze(-1)
    zy = z.gather(-1, idx).squeeze(-1)
    rest = z.scatter(-1, idx, -math.inf)
    return zy - torch.logsumexp(rest, dim=-1)


def attack_features(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(..., n, 4) label-aware features for the shadow attack's classifier: φ (logit confidence),
    log p_y, the entropy of p, and the gap between the two largest log-probabilities."""
    _check_logits(logits, labels, "attack_features")
    logp = torch.log_softmax(logits.double(), -1)
    lpy = logp.gather(-1, labels.expand(logp.shape[:-1]).unsqueeze(-1)).squeeze(-1)
    ent = -(logp.exp() * logp).sum(-1)
    top2 = logp.topk(min(2, logp.shape[-1]), dim=-1).values
    gap = top2[..., 0] - top2[..., -1]
    return torch.stack([logit_confidence(logits, labels), lpy, ent, gap], dim=-1)


# ------------------------------------------------------------------ attacks

def _pair(arg, name: str, owner: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not (isinstance(arg, (tuple, list)) and len(arg) == 2):
        raise invalid(name, owner, "a pair (logits or inputs, labels)", type(arg).__name__)
    return arg[0], arg[1]


def loss_threshold_attack(model: nn.Module | None = None, *, members, nonmembers, from_logits: bool = False,
                          **kwargs) -> AttackResult:
    """Yeom et al. (2018): score = −cross-entropy loss. ``members``/``nonmembers`` are (x, y) pairs
    fed to ``model``, or (logits, y) pairs with ``from_logits=True`` (then ``model`` is None).
    ``kwargs`` go to ``attack_metrics``."""
    owner = "loss_threshold_attack"
    (a, ya), (b, yb) = _pair(members, "members", owner), _pair(nonmembers, "nonmembers", owner)
    if not from_logits:
        if model is None:
            raise invalid("model", owner, "a torch.nn.Module (or from_logits=True)", None)
        a, b = model_logits(model, a), model_logits(model, b)
    la, lb = losses_from_logits(a, ya), losses_from_logits(b, yb)
    scores = -torch.cat([la, lb]).numpy()
    member = np.arange(scores.size) < la.numel()
    return attack_metrics(scores, member, attack="loss-threshold", **kwargs)


def shadow_attack(*, shadow_in, shadow_out, members, nonmembers, **kwargs) -> AttackResult:
    """Shokri et al. (2017). Every argument is a (logits, labels) pair: ``shadow_in`` the shadow
    models' logits (S, n_in, C) (or (n_in, C)) on their own training examples, ``shadow_out`` (S,
    n_out, C) on examples they never saw; ``members``/``nonmembers`` the target model's logits
    (n, C). A logistic regression on standardized ``attack_features`` learns in vs out from the
    shadows; its log-odds on the target's outputs are the scores."""
    from sklearn.linear_model import LogisticRegression
    owner = "shadow_attack"
    feats = []
    for name, arg in (("shadow_in", shadow_in), ("shadow_out", shadow_out), ("members", members),
                      ("nonmembers", nonmembers)):
        z, y = _pair(arg, name, owner)
        _check_logits(z, y, owner)
        feats.append(attack_features(z, y).reshape(-1, 4).numpy())
    f_in, f_out, f_m, f_n = feats
    xs = np.concatenate([f_in, f_out])
    ys = np.r_[np.ones(len(f_in)), np.zeros(len(f_out))]
    mu, sd = xs.mean(0), xs.std(0) + 1e-12
    clf = LogisticRegression(C=1.0, max_iter=1000).fit((xs - mu) / sd, ys)
    target = (np.concatenate([f_m, f_n]) - mu) / sd
    scores = clf.decision_function(target)
    member = np.arange(scores.size) < len(f_m)
    return attack_metrics(scores, member, attack="shadow", **kwargs)


def lira_scores(target_phi, shadow_phi, shadow_in=None, *, global_variance: bool = True,
                min_std: float = 1e-3) -> np.ndarray:
    """LiRA scores (n,): ``target_phi`` (n,) the target model's logit confidence on each candidate,
    ``shadow_phi`` (S, n) the shadows', ``shadow_in`` (S, n) bool: whether shadow s trained on
    example i (None: no shadow did; the offline attack). Online when every example has at least
    one in- and one out-shadow: log N(φ; μ_in, σ_in²) − log N(φ; μ_out, σ_out²); offline otherwise
    (only out-shadows used): (φ − μ_out)/σ_out."""
    owner = "lira_scores"
    t = np.asarray(target_phi, dtype=float)
    sp = np.asarray(shadow_phi, dtype=float)
    if t.ndim != 1:
        raise invalid("target_phi", owner, "a 1-d array (n,)", f"shape {t.shape}")
    if sp.ndim != 2 or sp.shape[1] != t.size:
        raise invalid("shadow_phi", owner, f"an array of shape (S, {t.size})", f"shape {sp.shape}")
    inn = np.zeros(sp.shape, bool) if shadow_in is None else np.asarray(shadow_in, dtype=bool)
    if inn.shape != sp.shape:
        raise invalid("shadow_in", owner, f"a bool array of shape {sp.shape}", f"shape {inn.shape}")
    out = ~inn
    if not out.any(0).all():
        raise invalid("shadow_in", owner, "False for at least one shadow per example (an out-shadow)",
                      f"{int((~out.any(0)).sum())} examples with none")
    mu_out, sd_out = _gauss(sp, out, global_variance, min_std)
    if not inn.any(0).all():                             # offline
        return (t - mu_out) / sd_out
    mu_in, sd_in = _gauss(sp, inn, global_variance, min_std)
    return _st.norm.logpdf(t, mu_in, sd_in) - _st.norm.logpdf(t, mu_out, sd_out)


def _gauss(x: np.ndarray, mask: np.ndarray, pooled: bool, min_std: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean (n,) and standard deviation (n,) of the entries of x (S, n) where mask;
    pooled: one σ from every column's deviations about its own mean."""
    k = mask.sum(0)
    mu = np.where(mask, x, 0).sum(0) / k
    dev2 = np.where(mask, (x - mu) ** 2, 0)
    if pooled:
        dof = max(int(k.sum() - k.size), 1)
        sd = np.full(mu.shape, math.sqrt(dev2.sum() / dof))
    else:
        sd = np.sqrt(dev2.sum(0) / np.maximum(k - 1, 1))
    return mu, np.maximum(sd, min_std)


def lira_attack(*, target_phi, shadow_phi, is_member, shadow_in=None, global_variance: bool = True,
                **kwargs) -> AttackResult:
    """``lira_scores`` scored against ``is_member`` (n,) with ``attack_metrics``."""
    scores = lira_scores(target_phi, shadow_phi, shadow_in, global_variance=global_variance)
    online = shadow_in is not None and np.asarray(shadow_in, bool).any(0).all()
    return attack_metrics(scores, is_member, attack="lira-online" if online else "lira-offline", **kwargs)
