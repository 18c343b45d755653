"""Projected gradient ascent on the inputs (PGD, Madry et al. 2018), and adversarial training with it.

The arithmetic of one PGD attack lives here, below the instruments, so that ``train`` and
``train_ensemble`` can train on adversarial examples (the inner maximization of Madry et al.) and
``petridish.instruments.attacks`` can attack trained models with the same steps:

* random start: L∞ — δ₀ = ε(2U − 1), U ~ Uniform[0, 1)^shape; L2 — a uniform draw from the ε-ball,
  δ₀ = ε·u^(1/d)·g/‖g‖ with g ~ N(0, I_d), u ~ Uniform[0, 1) (d = features per example); both drawn
  on the CPU from the caller's ``torch.Generator``, in the input's dtype, in that order;
* ascent step: L∞ — δ ← δ + α·sign(∇); L2 — δ ← δ + α·∇/‖∇‖ (an example with ∇ = 0 stays put);
* projection: L∞ — clamp to [−ε, ε]; L2 — δ·min(1, ε/‖δ‖); then x + δ is clamped to the bounds
  (``lower``/``upper``: None = unbounded, a float, or a tensor broadcastable to one example).

Norms are per example: taken over every dimension after the ``batch_dims`` leading ones (1 for
(n, ...) inputs, 2 for an ensemble's per-member (K, B, ...) inputs). The default step size is
α = 2.5·ε/steps (Madry et al.), so that a walk of ``steps`` steps can cross the ball.

Adversarial training (``train(..., adversarial=...)``, ``train_ensemble(..., adversarial=...)``):
each update first replaces its minibatch by PGD examples against the current weights (the loss
summed over the minibatch, whose per-example input gradients are those of each example's own
loss), then takes the usual step on them. The random starts come from ``sub_seed(seed,
"attack")`` of the run's data seed, so that ensemble member k sees exactly the examples that
``train(seed=data_seeds[k])`` would.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch.func import functional_call, grad, vmap

from petridish.errors import check_choice, check_number, invalid
from petridish.losses import loss_value
from petridish.seeding import generator
from petridish.train.func_engines import VmapEngine

NORMS = ("inf", "2")
Bound = float | torch.Tensor | None


@dataclass(frozen=True)
class Adversarial:
    """PGD adversarial-training settings (Madry et al. 2018); ``eps`` = 0 trains on clean data."""

    eps: float
    steps: int = 7
    norm: str = "inf"
    step_size: float | None = None          # None = 2.5·eps/steps
    lower: Bound = None                     # input bounds; None = unbounded
    upper: Bound = None
    random_start: bool = True

    @property
    def alpha(self) -> float:
        return self.step_size if self.step_size is not None else 2.5 * self.eps / self.steps


def check_adversarial(value: Any, owner: str) -> Adversarial | None:
    """None, an ``Adversarial`` or a dict of its fields -> a validated ``Adversarial`` (or None)."""
    if value is None:
        return None
    if isinstance(value, dict):
        unknown = set(value) - set(Adversarial.__dataclass_fields__)
        if unknown or "eps" not in value:
            raise invalid("adversarial", owner, "None, an Adversarial or a dict with 'eps' and optionally "
                          "steps, norm, step_size, lower, upper, random_start", value)
        value = Adversarial(**value)
    if not isinstance(value, Adversarial):
        raise invalid("adversarial", owner, "None, an Adversarial or a dict of its fields", type(value).__name__)
    check_number(value.eps, "adversarial.eps", owner, low=0)
    check_number(value.steps, "adversarial.steps", owner, kind=int, low=1)
    check_choice(value.norm, "adversarial.norm", owner, NORMS)
    if value.step_size is not None:
        check_number(value.step_size, "adversarial.step_size", owner, low=0, low_open=True)
    if not isinstance(value.random_start, bool):
        raise invalid("adversarial.random_start", owner, "a bool", value.random_start)
    check_bounds(value.lower, value.upper, owner)
    return value


def check_bounds(lower: Bound, upper: Bound, owner: str) -> None:
    for name, b in (("lower", lower), ("upper", upper)):
        if b is not None and not isinstance(b, torch.Tensor):
            check_number(b, name, owner)
    if lower is not None and upper is not None and bool(torch.any(torch.as_tensor(lower) > torch.as_tensor(upper))):
        raise invalid("upper", owner, "a bound >= 'lower' everywhere", upper)


def clip(x: torch.Tensor, lower: Bound, upper: Bound) -> torch.Tensor:
    """x clamped to [lower, upper] (either may be None, a float or a broadcastable tensor)."""
    if lower is None and upper is None:
        return x
    lo = torch.as_tensor(lower, dtype=x.dtype, device=x.device) if lower is not None else None
    hi = torch.as_tensor(upper, dtype=x.dtype, device=x.device) if upper is not None else None
    return torch.clamp(x, min=lo, max=hi)


def _norms(t: torch.Tensor, batch_dims: int, p: float) -> torch.Tensor:
    """Per-example p-norms, shaped to broadcast against t: (*batch, 1, ..., 1)."""
    flat = t.reshape(*t.shape[:batch_dims], -1)
    return torch.linalg.vector_norm(flat, ord=p, dim=-1).reshape(*t.shape[:batch_dims], *[1] * (t.dim() - batch_dims))


def random_start(shape: tuple[int, ...], eps: float, norm: str, gen: torch.Generator, dtype: torch.dtype,
                 batch_dims: int = 1) -> torch.Tensor:
    """δ₀ on the CPU (see the module docstring for the exact draws)."""
    if norm == "inf":
        return eps * (2 * torch.rand(shape, generator=gen, dtype=dtype) - 1)
    g = torch.randn(shape, generator=gen, dtype=dtype)
    d = math.prod(shape[batch_dims:])
    u = torch.rand(shape[:batch_dims], generator=gen, dtype=dtype).reshape(*shape[:batch_dims],
                                                                           *[1] * (len(shape) - batch_dims))
    return eps * u ** (1.0 / d) * g / _norms(g, batch_dims, 2).clamp_min(torch.finfo(dtype).tiny)


def ascent(g: torch.Tensor, alpha: float, norm: str, batch_dims: int = 1) -> torch.Tensor:
    """The step α·sign(g) (L∞) or α·g/‖g‖ (L2; 0 where g = 0)."""
    if norm == "inf":
        return alpha * torch.sign(g)
    n = _norms(g, batch_dims, 2)
    return torch.where(n > 0, alpha * g / n.clamp_min(torch.finfo(g.dtype).tiny), torch.zeros_like(g))


def project(delta: torch.Tensor, eps: float, norm: str, batch_dims: int = 1) -> torch.Tensor:
    if norm == "inf":
        return delta.clamp(-eps, eps)
    n = _norms(delta, batch_dims, 2)
    return delta * torch.clamp(eps / n.clamp_min(torch.finfo(delta.dtype).tiny), max=1.0)


def pgd_walk(input_grad: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *, eps: float, norm: str,
             steps: int, alpha: float, lower: Bound, upper: Bound, start: torch.Tensor | None,
             batch_dims: int = 1) -> torch.Tensor:
    """``steps`` PGD steps from x + start (start None = x); ``input_grad(x_adv)`` is ∇ of the loss."""
    if eps == 0:
        return x.clone()
    delta = torch.zeros_like(x) if start is None else start.to(x.device)
    xa = clip(x + delta, lower, upper)
    for _ in range(steps):
        g = input_grad(xa)
        delta = project(xa + ascent(g, alpha, norm, batch_dims) - x, eps, norm, batch_dims)
        xa = clip(x + delta, lower, upper)
    return xa.detach()


# ------------------------------------------------------------------ adversarial training

def model_input_grad(model: torch.nn.Module, y: torch.Tensor, loss: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """x -> ∇ₓ of the loss summed over the batch (never touches the parameters' ``.grad``)."""
    def fn(xa: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            xa = xa.detach().requires_grad_(True)
            total = loss_value(model(xa), y, loss) * xa.shape[0]
            return torch.autograd.grad(total, xa)[0]
    return fn


class Attacker:
    """Per-run adversarial-example maker: one random stream per data seed (member)."""

    def __init__(self, adv: Adversarial, loss: str, data_seeds: list[int]):
        self.adv, self.loss = adv, loss
        self.gens = [generator(s, "attack") for s in data_seeds]

    def _start(self, shape, dtype) -> torch.Tensor | None:
        """δ₀ per member, stacked (K, B, ...); None without a random start."""
        a = self.adv
        if not a.random_start:
            return None
        return torch.stack([random_start(tuple(shape), a.eps, a.norm, g, dtype) for g in self.gens])

    def solo(self, model: torch.nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        a = self.adv
        return pgd_walk(model_input_grad(model, yb, self.loss), xb, eps=a.eps, norm=a.norm, steps=a.steps,
                        alpha=a.alpha, lower=a.lower, upper=a.upper, start=_first(self._start(xb.shape, xb.dtype)))

    def ensemble(self, engine, xb: torch.Tensor, yb: torch.Tensor, *, x_stacked: bool,
                 y_stacked: bool) -> torch.Tensor:
        """Per-member adversarial inputs (K, B, ...) for a VmapEngine/LoopEngine."""
        a, k = self.adv, len(self.gens)
        xs = xb if x_stacked else xb.unsqueeze(0).expand(k, *xb.shape)
        grad_fn = _ensemble_input_grad(engine, yb, y_stacked, self.loss)
        return pgd_walk(grad_fn, xs, eps=a.eps, norm=a.norm, steps=a.steps, alpha=a.alpha, lower=a.lower,
                        upper=a.upper, start=self._start(xs.shape[1:], xs.dtype), batch_dims=2)


def _first(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t[0]


def _ensemble_input_grad(engine, yb, y_stacked: bool, loss: str):
    """(K, B, ...) -> per-member ∇ₓ of each member's summed loss, (K, B, ...)."""
    names, fixed, buffers, base = engine.train_names, engine.fixed, engine.buffers, engine.base
    params = {**dict(zip(names, engine.params)), **fixed}

    def member(p, b, x, y):
        return loss_value(functional_call(base, (p, b), (x,)), y, loss) * x.shape[0]

    if isinstance(engine, VmapEngine):                           # one vectorized pass
        fn = vmap(grad(member, argnums=2), in_dims=(0, 0, 0, 0 if y_stacked else None))
        return lambda xs: fn({n: t.detach() for n, t in params.items()}, buffers, xs, yb).detach()

    def loop(xs):                                                # LoopEngine: member by member
        with torch.enable_grad():
            xs = xs.detach().requires_grad_(True)
            total = sum(member({n: t[i].detach() for n, t in params.items()},
                               {n: t[i] for n, t in buffers.items()}, xs[i], yb[i] if y_stacked else yb)
                        for i in range(xs.shape[0]))
            return torch.autograd.grad(total, xs)[0]
    return loop


def ensemble_path(adv: Adversarial | None, path: str, models: list[torch.nn.Module], owner: str) -> str:
    """Adversarial ensembles need input gradients: the generic engines ('vmap'; 'loop' for recurrent
    modules, which vmap cannot batch). Without ``adv`` the path is left as it is."""
    if adv is None:
        return path
    if path in ("fast", "stacked"):
        raise invalid("path", owner, "'auto', 'vmap' or 'loop' when adversarial training is on", path)
    if path == "auto":
        return "loop" if any(isinstance(m, torch.nn.RNNBase) for m in models[0].modules()) else "vmap"
    return path
