"""Adversarial attacks on any differentiable PyTorch classifier: FGSM, PGD (L∞, L2), DeepFool.

Plain functions on a model ``(n, ...) -> (n, C)`` logits and tensor data. Bounds are arguments
(``lower``/``upper``: None = unbounded, as for the standardized mnist1d; a float, e.g. 0 and 1
for digits; or a tensor broadcastable to one example), never an assumed [0, 1]; ``x`` must lie
within them. Batched (``batch_size`` chunks; None = all at once) and deterministic given
``seed``. The model is only called: its weights, ``.grad`` fields and train/eval mode are left
as they were (gradients are taken with ``torch.autograd.grad`` with respect to the inputs only).

* ``fgsm`` — one step of size ε: x + ε·sign(∇ₓL) (Goodfellow et al. 2015); ``norm="2"`` gives the
  fast gradient method x + ε·∇ₓL/‖∇ₓL‖₂.
* ``pgd`` — projected gradient ascent on the cross-entropy (Madry et al. 2018), with the steps of
  ``petridish.train.adversarial`` (random start in the ε-ball, default step 2.5·ε/steps), and
  ``restarts``: per example the worst restart is kept (a misclassified one first, then the
  highest loss). At ε = 0 the inputs come back unchanged, so robust accuracy is exactly the
  clean accuracy. Restart r's random start is the r-th draw from ``generator(seed, "attack")``
  of the whole (n, ...) batch, so chunking never changes the numbers.
* ``deepfool`` — the minimal perturbation that crosses the nearest linearized decision boundary,
  iterated (Moosavi-Dezfooli, Fawzi & Frossard 2016), multi-class, L2 or L∞, with overshoot.
* ``robust_accuracy`` — accuracy under attack along a list of ε; ``success_rate`` — the fraction
  of correctly classified examples an attack flips; ``deepfool_norms`` — the distribution of
  DeepFool's minimal perturbation norms (absolute and relative to ‖x‖).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from petridish.errors import check_choice, check_number, invalid
from petridish.seeding import generator
from petridish.train.adversarial import NORMS, Bound, ascent, check_bounds, clip, pgd_walk, random_start

ATTACKS = ("pgd", "fgsm")


@dataclass(frozen=True)
class DeepFoolResult:
    """x_adv (n, ...); perturbation = x_adv − x; norms (n,) its L2 (or L∞) norm, float64;
    success (n,) bool: the prediction at x_adv differs from that at x; iterations (n,) int64."""

    x_adv: torch.Tensor
    perturbation: torch.Tensor
    norms: torch.Tensor
    success: torch.Tensor
    iterations: torch.Tensor


@dataclass(frozen=True)
class NormDistribution:
    """DeepFool's minimal perturbation norms over a data set (successful examples only).

    norms (m,) float64 sorted; relative (m,) = ‖r‖/‖x‖ (the ρ_adv of Moosavi-Dezfooli et al.);
    success_rate = m / n; quantiles {q: norm}; mean, median."""

    norms: torch.Tensor
    relative: torch.Tensor
    success_rate: float
    quantiles: dict[float, float]
    mean: float
    median: float


# ------------------------------------------------------------------ validation

def _check(owner: str, model, x, y=None, *, eps=None, norm="inf", lower=None, upper=None, batch_size=None):
    if not callable(model):
        raise invalid("model", owner, "a callable (n, ...) -> (n, C) logits, e.g. a torch.nn.Module", model)
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 2 or x.shape[0] < 1:
        raise invalid("x", owner, "a floating-point tensor (n, ...) with n >= 1", getattr(x, "shape", type(x).__name__))
    if y is not None and (not isinstance(y, torch.Tensor) or y.is_floating_point() or tuple(y.shape) != (x.shape[0],)):
        raise invalid("y", owner, f"an integer tensor of shape ({x.shape[0]},)", getattr(y, "shape", type(y).__name__))
    if eps is not None:
        eps = check_number(eps, "eps", owner, low=0)
    check_choice(norm, "norm", owner, NORMS)
    check_bounds(lower, upper, owner)
    if bool((clip(x, lower, upper) != x).any()):
        raise invalid("x", owner, "a tensor within [lower, upper]", "values outside the bounds")
    if batch_size is not None:
        batch_size = check_number(batch_size, "batch_size", owner, kind=int, low=1)
    return eps, batch_size


def _chunks(n: int, batch_size: int | None):
    step = n if batch_size is None else batch_size
    return [slice(i, min(n, i + step)) for i in range(0, n, step)]


def _per_example_loss(model, x, y) -> torch.Tensor:
    return F.cross_entropy(model(x), y, reduction="none")


def _input_grad(model, y):
    """x -> ∇ₓ Σᵢ CE(model(x)ᵢ, yᵢ): each row is that example's own loss gradient."""
    def fn(xa: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            xa = xa.detach().requires_grad_(True)
            return torch.autograd.grad(_per_example_loss(model, xa, y).sum(), xa)[0]
    return fn


@torch.no_grad()
def predict(model, x: torch.Tensor, *, batch_size: int | None = None) -> torch.Tensor:
    """Predicted classes (n,) int64."""
    return torch.cat([model(x[s]).argmax(-1) for s in _chunks(x.shape[0], batch_size)])


# ------------------------------------------------------------------ attacks

def fgsm(model, x: torch.Tensor, y: torch.Tensor, *, eps: float, norm: str = "inf", lower: Bound = None,
         upper: Bound = None, batch_size: int | None = None) -> torch.Tensor:
    """x + ε·sign(∇ₓCE) (L∞) or x + ε·∇ₓCE/‖∇ₓCE‖₂ (L2), clamped to the bounds; (n, ...)."""
    eps, batch_size = _check("fgsm", model, x, y, eps=eps, norm=norm, lower=lower, upper=upper,
                             batch_size=batch_size)
    if eps == 0:
        return x.clone()
    out = []
    for s in _chunks(x.shape[0], batch_size):
        g = _input_grad(model, y[s])(x[s])
        out.append(clip(x[s] + ascent(g, eps, norm), lower, upper))
    return torch.cat(out).detach()


def pgd(model, x: torch.Tensor, y: torch.Tensor, *, eps: float, norm: str = "inf", steps: int = 10,
        step_size: float | None = None, restarts: int = 1, random_start: bool = True, lower: Bound = None,
        upper: Bound = None, seed: int = 0, batch_size: int | None = None) -> torch.Tensor:
    """PGD adversarial examples (n, ...), the worst of ``restarts`` random starts per example."""
    eps, batch_size = _check("pgd", model, x, y, eps=eps, norm=norm, lower=lower, upper=upper,
                             batch_size=batch_size)
    steps = check_number(steps, "steps", "pgd", kind=int, low=1)
    restarts = check_number(restarts, "restarts", "pgd", kind=int, low=1)
    seed = check_number(seed, "seed", "pgd", kind=int, low=0)
    if step_size is not None:
        step_size = check_number(step_size, "step_size", "pgd", low=0, low_open=True)
    if not isinstance(random_start, bool):
        raise invalid("random_start", "pgd", "a bool", random_start)
    if eps == 0:
        return x.clone()                   # the ε-ball is {x}: robust accuracy = clean accuracy, exactly
    alpha = step_size if step_size is not None else 2.5 * eps / steps
    gen = generator(seed, "attack")
    starts = [_start(x, eps, norm, gen) if random_start else None for _ in range(restarts)]
    out = []
    for s in _chunks(x.shape[0], batch_size):
        xs, ys = x[s], y[s]
        best = best_loss = best_fooled = None
        for start in starts:
            xa = pgd_walk(_input_grad(model, ys), xs, eps=eps, norm=norm, steps=steps, alpha=alpha,
                          lower=lower, upper=upper, start=None if start is None else start[s])
            with torch.no_grad():
                logits = model(xa)
                loss = F.cross_entropy(logits, ys, reduction="none")
                fooled = logits.argmax(-1) != ys
            if best is None:
                best, best_loss, best_fooled = xa, loss, fooled
                continue
            # worse = newly fooled, or equally fooled with a higher loss
            worse = (fooled & ~best_fooled) | ((fooled == best_fooled) & (loss > best_loss))
            best = torch.where(worse.reshape(-1, *[1] * (x.dim() - 1)), xa, best)
            best_loss = torch.where(worse, loss, best_loss)
            best_fooled = best_fooled | fooled
        out.append(best)
    return torch.cat(out).detach()


def _start(x: torch.Tensor, eps: float, norm: str, gen: torch.Generator) -> torch.Tensor:
    return random_start(tuple(x.shape), eps, norm, gen, x.dtype).to(x.device)


def deepfool(model, x: torch.Tensor, *, norm: str = "2", overshoot: float = 0.02, max_iter: int = 50,
             lower: Bound = None, upper: Bound = None, batch_size: int | None = None) -> DeepFoolResult:
    """DeepFool (multi-class): from x, step to the nearest boundary of the model linearized at the
    current point, r = |f'ₗ|/‖w'ₗ‖² · w'ₗ (L2) or |f'ₗ|/‖w'ₗ‖₁ · sign(w'ₗ) (L∞), where
    f'ₖ = fₖ − f_{k₀}, w'ₖ = ∇fₖ − ∇f_{k₀} and l minimizes |f'ₖ|/‖w'ₖ‖ (dual norm); the total
    x + (1 + overshoot)·Σr, clamped to the bounds, until the prediction k₀ at x changes or
    ``max_iter`` iterations. For an affine binary classifier the first step is exact: the norm is
    (1 + overshoot)·|w·x + b|/‖w‖."""
    _, batch_size = _check("deepfool", model, x, norm=norm, lower=lower, upper=upper, batch_size=batch_size)
    overshoot = check_number(overshoot, "overshoot", "deepfool", low=0)
    max_iter = check_number(max_iter, "max_iter", "deepfool", kind=int, low=1)
    parts = [_deepfool(model, x[s], norm, overshoot, max_iter, lower, upper)
             for s in _chunks(x.shape[0], batch_size)]
    xa, iters = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    success = predict(model, xa, batch_size=batch_size) != predict(model, x, batch_size=batch_size)
    pert = xa - x
    p = 2 if norm == "2" else float("inf")
    norms = torch.linalg.vector_norm(pert.reshape(x.shape[0], -1).double(), ord=p, dim=1)
    return DeepFoolResult(xa, pert, norms, success, iters)


def _deepfool(model, x, norm, overshoot, max_iter, lower, upper):
    n = x.shape[0]
    with torch.no_grad():
        k0 = model(x).argmax(-1)                                       # (n,) the prediction to leave
    r_tot = torch.zeros_like(x)
    xa = x.clone()
    iters = torch.zeros(n, dtype=torch.int64)
    active = torch.ones(n, dtype=torch.bool, device=x.device)
    tiny = torch.finfo(x.dtype).tiny
    for _ in range(max_iter):
        idx = active.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        with torch.enable_grad():
            xi = xa[idx].detach().requires_grad_(True)
            logits = model(xi)                                         # (m, C)
            c = logits.shape[1]
            flipped = logits.argmax(-1) != k0[idx]
            # Jacobian rows: ∂f_j/∂x for every class j, (m, C, ...), one backward per class (each row's
            # logits depend on that row's input only; a batched backward via vmap measured slower)
            jac = torch.stack([torch.autograd.grad(logits[:, j].sum(), xi, retain_graph=j < c - 1)[0]
                               for j in range(c)], dim=1)
        logits = logits.detach()
        keep = ~flipped
        active[idx[flipped]] = False
        if not bool(keep.any()):
            break
        idx, logits, jac = idx[keep], logits[keep], jac[keep]
        m = idx.numel()
        rows = torch.arange(m, device=x.device)
        own = k0[idx]
        f = logits - logits[rows, own].unsqueeze(1)                   # (m, C) f'_k
        w = (jac - jac[rows, own].unsqueeze(1)).reshape(m, c, -1)     # (m, C, d) w'_k
        dual = 2 if norm == "2" else 1
        wn = torch.linalg.vector_norm(w, ord=dual, dim=2)            # (m, C)
        dist = f.abs() / wn.clamp_min(tiny)
        dist[rows, own] = float("inf")
        l = dist.argmin(1)                                            # (m,) the nearest boundary
        fl, wl, nl = f[rows, l].abs(), w[rows, l], wn[rows, l]
        if norm == "2":
            r = (fl / nl.clamp_min(tiny) ** 2).unsqueeze(1) * wl
        else:
            r = (fl / nl.clamp_min(tiny)).unsqueeze(1) * torch.sign(wl)
        r_tot[idx] += r.reshape(m, *x.shape[1:])
        xa[idx] = clip(x[idx] + (1 + overshoot) * r_tot[idx], lower, upper)
        iters[idx.cpu()] += 1
    return xa.detach(), iters


# ------------------------------------------------------------------ measurements

def success_rate(model, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor, *,
                 batch_size: int | None = None) -> float:
    """Fraction of the examples classified correctly at x that are misclassified at x_adv
    (0 when none is correct)."""
    clean = predict(model, x, batch_size=batch_size) == y
    adv = predict(model, x_adv, batch_size=batch_size) == y
    return float((clean & ~adv).sum()) / max(1, int(clean.sum()))


def robust_accuracy(model, x: torch.Tensor, y: torch.Tensor, *, eps_list: Sequence[float], attack: str = "pgd",
                    norm: str = "inf", steps: int = 10, restarts: int = 1, step_size: float | None = None,
                    lower: Bound = None, upper: Bound = None, seed: int = 0,
                    batch_size: int | None = None) -> torch.Tensor:
    """Accuracy under ``attack`` ("pgd" or "fgsm") at each ε of ``eps_list``: (m,) float64."""
    check_choice(attack, "attack", "robust_accuracy", ATTACKS)
    if not isinstance(eps_list, (list, tuple)) or not eps_list:
        raise invalid("eps_list", "robust_accuracy", "a non-empty list of floats >= 0", eps_list)
    eps_list = [check_number(e, "eps_list", "robust_accuracy", low=0) for e in eps_list]
    accs = []
    for e in eps_list:
        if attack == "pgd":
            xa = pgd(model, x, y, eps=e, norm=norm, steps=steps, restarts=restarts, step_size=step_size,
                     lower=lower, upper=upper, seed=seed, batch_size=batch_size)
        else:
            xa = fgsm(model, x, y, eps=e, norm=norm, lower=lower, upper=upper, batch_size=batch_size)
        accs.append(float((predict(model, xa, batch_size=batch_size) == y).double().mean()))
    return torch.tensor(accs, dtype=torch.float64)


def deepfool_norms(model, x: torch.Tensor, *, norm: str = "2", overshoot: float = 0.02, max_iter: int = 50,
                   lower: Bound = None, upper: Bound = None, batch_size: int | None = None,
                   quantiles: Sequence[float] = (0.1, 0.25, 0.5, 0.75, 0.9)) -> NormDistribution:
    """The distribution of DeepFool's minimal perturbation norms over the examples it flips."""
    for q in quantiles:
        check_number(q, "quantiles", "deepfool_norms", low=0, high=1)
    res = deepfool(model, x, norm=norm, overshoot=overshoot, max_iter=max_iter, lower=lower, upper=upper,
                   batch_size=batch_size)
    norms = res.norms[res.success].sort().values
    p = 2 if norm == "2" else float("inf")
    xn = torch.linalg.vector_norm(x.reshape(x.shape[0], -1).double(), ord=p, dim=1)[res.success]
    rel = res.norms[res.success] / xn.clamp_min(torch.finfo(torch.float64).tiny)
    nan = float("nan")
    qs = {float(q): float(torch.quantile(norms, q)) if norms.numel() else nan for q in quantiles}
    return NormDistribution(norms, rel.sort().values, float(res.success.double().mean()), qs,
                            float(norms.mean()) if norms.numel() else nan,
                            float(norms.median()) if norms.numel() else nan)
