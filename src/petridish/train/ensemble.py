"""``train_ensemble``: K members of one architecture trained in one vectorized pass.

Member k is exactly what ``train(model_fn(seeds[k]), x, y[k], seed=data_seeds[k], ...)``
would produce (same init, same minibatch order, same arithmetic up to float rounding),
with its own lr / momentum / weight decay / init scale / labels if given per member.
Engines: "fast" (stacked-weights MLP, hand-written backward), "stacked" (the paper's
CNN as grouped convs, its GRU as one batched recurrence with a hand-written backward), "vmap" (torch.func) and
"loop" (per-member functional_call; for other recurrent modules). "auto" picks the first
that applies.
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable, Sequence

import torch
from torch import nn

from petridish.device import CPU, target_device
from petridish.errors import check_choice, check_number, invalid
from petridish import steps as _steps   # progress (`steps` is an argument here)
from petridish.models.registry import build_model
from petridish.train.adversarial import Adversarial, Attacker, check_adversarial, ensemble_path
from petridish.train.batches import batch_slices, epoch_orders
from petridish.train.config import check_data, eval_points, make_config, per_member
from petridish.train.evaluate import evaluate
from petridish.train.fast_mlp import FastMLPEngine, supports_fast
from petridish.train.func_engines import LoopEngine, VmapEngine
from petridish.train.loop import _check_eval_sets
from petridish.train.results import EnsembleResult
from petridish.train.schedules import lr_multiplier
from petridish.train.stacked_models import StackedEngine, supports_stacked
from petridish.train.stacked_optim import StackedOptimizer

OWNER = "train_ensemble"
PATHS = ("auto", "fast", "stacked", "vmap", "loop")


def train_ensemble(model_fn: Callable[[int], nn.Module] | str, x: torch.Tensor, y: torch.Tensor, *,
                   seeds: Sequence[int], lr: float | Sequence[float], weight_decay: Any = 0.0,
                   momentum: Any = 0.0, init_scale: Any = 1.0, optimizer: str = "sgd",
                   batch_size: int | None = None, steps: int | None = None, epochs: int | None = None,
                   loss: str = "ce", schedule: str = "constant", warmup_fraction: float = 0.05,
                   target_loss: float | None = None,
                   eval_sets: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
                   eval_every: int | None = None, betas: Sequence[float] = (0.9, 0.999),
                   eps: float = 1e-8, data_seeds: Sequence[int] | None = None,
                   model_kwargs: dict[str, Any] | None = None, path: str = "auto",
                   on_eval: Callable[[int, dict[str, dict[str, torch.Tensor]]], None] | None = None,
                   adversarial: Adversarial | dict | None = None) -> EnsembleResult:
    """Train K = len(seeds) models together.

    * ``model_fn(seed) -> nn.Module`` builds member k from ``seeds[k]``; or a model name
      for ``build_model`` with ``model_kwargs`` (d_in/d_out default to the data's).
    * ``lr``, ``weight_decay``, ``momentum``, ``init_scale``: a scalar or one value per
      member. ``init_scale`` multiplies every initial weight tensor (not biases).
    * ``y``: (n,) / (n, k) shared, or (K, n) / (K, n, k) per member (e.g. each member its
      own label-noise draw). Eval sets accept the same two layouts.
    * ``data_seeds`` (default ``seeds``): member k's minibatch order is that of
      ``train(seed=data_seeds[k])``.
    * Other arguments as in :func:`petridish.train.train`. A member whose minibatch loss
      is non-finite is marked diverged and frozen; one whose loss is <= ``target_loss``
      is frozen with its step count; the others go on untouched.
    * ``on_eval(step, {set: {metric: (K,) tensor}})`` is called after each evaluation
      (e.g. to report intermediate values to adaptive search, which may stop training
      by raising).
    * ``adversarial``: PGD adversarial training as in ``train``; member k's random starts are
      those of ``train(seed=data_seeds[k])``. It needs input gradients, so it runs on the
      generic engines ("auto" means "vmap", or "loop" for recurrent modules).
    * Device: that of ``x`` if the caller put it off the CPU, else
      ``petridish.device.current_device()``. Members are built (initialized) on the CPU
      and moved there; every tensor of the result is on the CPU.
    """
    t0 = time.perf_counter()
    if isinstance(seeds, int) or not isinstance(seeds, (list, tuple, range)) or len(seeds) < 1:
        raise invalid("seeds", OWNER, "a non-empty sequence of ints", seeds)
    seeds = [check_number(s, "seeds", OWNER, kind=int, low=0) for s in seeds]
    k = len(seeds)
    data_seeds = seeds if data_seeds is None else list(data_seeds)
    if len(data_seeds) != k:
        raise invalid("data_seeds", OWNER, f"a sequence of {k} ints (one per member)", data_seeds)
    data_seeds = [check_number(s, "data_seeds", OWNER, kind=int, low=0) for s in data_seeds]
    check_data(x, y, OWNER, per_member=k)
    n = x.shape[0]
    y_stacked = y.shape[0] != n          # (K, n, ...) per member; (n, ...) shared
    cfg = make_config(OWNER, n=n, optimizer=optimizer, loss=loss, batch_size=batch_size, steps=steps,
                      epochs=epochs, schedule=schedule, warmup_fraction=warmup_fraction,
                      target_loss=target_loss, eval_every=eval_every, betas=betas, eps=eps)
    lrs = per_member(lr, "lr", OWNER, k, low=0, low_open=True)
    moms = per_member(momentum, "momentum", OWNER, k, low=0, high=1, high_open=True)
    wds = per_member(weight_decay, "weight_decay", OWNER, k, low=0)
    scales = per_member(init_scale, "init_scale", OWNER, k, low=0)
    check_choice(path, "path", OWNER, PATHS)
    eval_sets = _check_eval_sets(eval_sets, OWNER, members=k)
    adv = check_adversarial(adversarial, OWNER)

    build = _builder(model_fn, x, y, y_stacked, cfg.loss, model_kwargs)
    dev = target_device(x)
    models = [_scaled(build(s), float(c)).to(dev) for s, c in zip(seeds, scales)]
    if dev != x.device or dev != y.device:
        x, y = x.to(dev), y.to(dev)
        eval_sets = {s: (ex.to(dev), ey.to(dev)) for s, (ex, ey) in eval_sets.items()}
    engine, used = _engine(models, cfg.loss, ensemble_path(adv, path, models, OWNER))
    attacker = Attacker(adv, cfg.loss, data_seeds) if adv is not None else None
    opt = StackedOptimizer(engine.params, kind=cfg.optimizer, lr=lrs, momentum=moms,
                           weight_decay=wds, betas=cfg.betas, eps=cfg.eps)

    losses: list[torch.Tensor] = []        # (K,) per step, NaN for stopped members
    active = torch.ones(k, dtype=torch.bool)
    diverged = torch.zeros(k, dtype=torch.bool)
    reached = torch.zeros(k, dtype=torch.bool)
    done = torch.zeros(k, dtype=torch.int64)
    points = set(eval_points(cfg.steps, cfg.eval_every))
    evals: dict[str, dict[str, list[torch.Tensor]]] = {name: {} for name in eval_sets}
    eval_steps: list[int] = []
    batches = _batch_stream(x, y, y_stacked, cfg.batch_size, data_seeds)
    all_active = True
    last = together = 0                    # steps so far; steps every member took
    _steps.expect(cfg.steps)              # progress for the lab (a no-op when nobody listens)
    for step in range(cfg.steps):
        xb, yb, xs = next(batches)
        ys = xs or y_stacked
        if attacker is not None:      # per-member PGD examples (K, B, ...) against the current weights
            xb, xs = attacker.ensemble(engine, xb, yb, x_stacked=xs, y_stacked=ys), True
        loss_k, grads = engine.loss_and_grads(xb, yb, x_stacked=xs, y_stacked=ys)
        # fast path: every member still training and no target: one finiteness check (a
        # finite sum implies every member's loss is finite)
        if not (all_active and cfg.target_loss is None and math.isfinite(float(loss_k.sum()))):
            loss64 = loss_k.to(CPU, torch.float64)
            stop = ~torch.isfinite(loss64)
            if cfg.target_loss is not None:
                hit = loss64 <= cfg.target_loss
                reached |= active & hit & ~stop
                stop |= hit
            loss_k = torch.where(active, loss64, math.nan)
            stop &= active
            if bool(stop.any()):
                diverged |= stop & ~torch.isfinite(loss64)
                active &= ~stop
                all_active = False
        losses.append(loss_k)
        if not all_active and not bool(active.any()):
            break
        mult = lr_multiplier(cfg.schedule, step, cfg.steps, warmup_fraction=cfg.warmup_fraction)
        opt.step(grads, mult, None if all_active else active)
        if all_active:
            together += 1
        else:
            done += active.to(torch.int64)
        last = step + 1
        _steps.advance()
        if last in points and eval_sets:
            _record(engine, eval_sets, cfg.loss, k, evals, eval_steps, last)
            if on_eval is not None:
                on_eval(last, {s: {m: v[-1].to(CPU) for m, v in d.items()} for s, d in evals.items()})
    if eval_sets and (not eval_steps or eval_steps[-1] != last):
        _record(engine, eval_sets, cfg.loss, k, evals, eval_steps, last)
    params, buffers = ({n: t.to(CPU) for n, t in d.items()} for d in engine.export())
    done += together
    history = torch.stack([l.to(CPU, torch.float64) for l in losses], dim=1) if losses else \
        torch.empty(k, 0, dtype=torch.float64)
    return EnsembleResult(
        params=params, buffers=buffers, loss_history=history,
        steps=done, diverged=diverged, reached_target=reached,
        steps_to_target=torch.where(reached, done, torch.full_like(done, -1)),
        seeds=seeds, path=used, eval_steps=eval_steps,
        eval_history={s: {m: torch.stack(v, dim=1).to(CPU) for m, v in d.items()} for s, d in evals.items()},
        wall_time=time.perf_counter() - t0, _build=lambda i: build(seeds[i]))


def _builder(model_fn, x, y, y_stacked, loss, model_kwargs) -> Callable[[int], nn.Module]:
    if isinstance(model_fn, str):
        kw = dict(model_kwargs or {})
        kw.setdefault("d_in", int(x[0].numel()))
        if "d_out" not in kw:
            if loss == "cross_entropy" or not y.is_floating_point():
                kw["d_out"] = int(y.max()) + 1
            else:
                kw["d_out"] = 1 if y.dim() == (2 if y_stacked else 1) else int(y.shape[-1])
        name = model_fn
        return lambda s: build_model(name, seed=s, **kw)
    if not callable(model_fn):
        raise invalid("model_fn", OWNER, "a callable seed -> nn.Module or a model name", model_fn)
    if model_kwargs:
        raise invalid("model_kwargs", OWNER, "None when model_fn is a callable", model_kwargs)
    return model_fn


def _scaled(model: nn.Module, scale: float) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise invalid("model_fn", OWNER, "a callable returning a torch.nn.Module", type(model).__name__)
    if scale != 1.0:
        scale_weights(model, scale)
    return model


@torch.no_grad()
def scale_weights(model: nn.Module, scale: float) -> nn.Module:
    """Multiply every parameter whose name ends in ``weight...`` (not biases) by ``scale``."""
    for name, p in model.named_parameters():
        if name.rsplit(".", 1)[-1].startswith("weight"):
            p.mul_(scale)
    return model


def _engine(models: list[nn.Module], loss: str, path: str):
    arch = [tuple((n, tuple(p.shape)) for n, p in m.state_dict().items()) for m in models]
    if any(a != arch[0] for a in arch):
        raise invalid("model_fn", OWNER, "a builder whose models all share one architecture",
                      "members with different parameter shapes")
    if path == "fast" or (path == "auto" and supports_fast(models[0])):
        if not supports_fast(models[0]):
            raise invalid("path", OWNER, "'fast' only for petridish MLP/Linear models", path)
        return FastMLPEngine(models, loss), "fast"
    if path == "stacked" or (path == "auto" and supports_stacked(models[0])):
        if not supports_stacked(models[0]):
            raise invalid("path", OWNER, "'stacked' only for petridish CNN1D/GRUClassifier models", path)
        return StackedEngine(models, loss), "stacked"
    recurrent = any(isinstance(m, nn.RNNBase) for m in models[0].modules())
    if path == "loop" or (path == "auto" and recurrent):
        return LoopEngine(models, loss), "loop"
    return VmapEngine(models, loss), "vmap"


def _batch_stream(x, y, y_stacked, batch_size, data_seeds):
    """Yields (xb, yb, stacked). Full batch: the shared data itself. Minibatches: each
    step gathers every member's batch, (K, B, ...) (gathering a whole epoch at once
    costs K·n rows of memory traffic per epoch for nothing); ``xb`` is valid until the
    next batch is drawn."""
    n, k = x.shape[0], len(data_seeds)
    if batch_size is None:
        while True:
            yield x, y, False
    gens = [torch.Generator().manual_seed(s) for s in data_seeds]
    slices = batch_slices(n, batch_size)
    out: dict[int, torch.Tensor] = {}      # x batches written into one buffer per batch size
    while True:
        order = epoch_orders(n, gens)                            # (K, n)
        for s in slices:
            idx = order[:, s]                                    # (K, B)
            b = idx.shape[1]
            flat = idx.reshape(-1)                               # (K·B,) one copy, used twice
            if x.device.type != "cpu":
                idx, flat = idx.to(x.device), flat.to(x.device)
            if b not in out:               # (the consumer is done with the last batch by the next)
                out[b] = x.new_empty(k * b, *x.shape[1:])
            xb = torch.index_select(x, 0, flat, out=out[b]).reshape(k, b, *x.shape[1:])
            if y_stacked:
                yb = y.gather(1, idx.reshape(k, b, *([1] * (y.dim() - 2))).expand(k, b, *y.shape[2:]))
            else:
                yb = y.index_select(0, flat).reshape(k, b, *y.shape[1:])
            yield xb, yb, True


def _record(engine, eval_sets, loss, k, evals, eval_steps, done) -> None:
    eval_steps.append(done)
    for name, (ex, ey) in eval_sets.items():
        for metric, v in evaluate(engine.forward, ex, ey, loss, members=k).items():
            evals[name].setdefault(metric, []).append(v)
