"""``train``: one model, plain autograd + torch.optim (the reference the ensemble must match)."""
from __future__ import annotations

import math
import time
from typing import Any, Sequence

import torch
from torch import nn

from petridish.device import CPU, target_device
from petridish.errors import check_number, invalid
from petridish import steps as _steps   # progress (`steps` is an argument here)
from petridish.train.adversarial import Adversarial, Attacker, check_adversarial
from petridish.train.batches import batch_indices
from petridish.train.config import check_data, eval_points, make_config
from petridish.train.evaluate import evaluate
from petridish.losses import loss_value
from petridish.train.results import TrainResult
from petridish.train.schedules import lr_multiplier

OWNER = "train"


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, optimizer: str = "sgd", lr: float,
          momentum: float = 0.0, weight_decay: float = 0.0, batch_size: int | None = None,
          steps: int | None = None, epochs: int | None = None, loss: str = "ce",
          schedule: str = "constant", warmup_fraction: float = 0.05, target_loss: float | None = None,
          seed: int = 0, eval_sets: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
          eval_every: int | None = None, betas: Sequence[float] = (0.9, 0.999),
          eps: float = 1e-8, adversarial: Adversarial | dict | None = None) -> TrainResult:
    """Train ``model`` in place on (x, y) and return its history.

    * optimizer: "sgd" (minibatch, torch.optim.SGD), "gd" (full-batch SGD), "adam"
      (torch.optim.Adam with ``betas``/``eps``), "adagrad" (torch.optim.Adagrad with ``eps``)
      or "rmsprop" (torch.optim.RMSprop with alpha = ``betas[1]`` and ``eps``); ``weight_decay``
      is coupled L2 (added to the gradient) and ``momentum`` is SGD's (and RMSProp's)
      heavy-ball momentum (dampening 0); Adam and AdaGrad ignore it.
    * ``batch_size`` None = full batch; exactly one of ``steps``/``epochs``.
    * The minibatch order comes only from ``seed`` (see ``petridish.train.batches``).
    * ``schedule`` multiplies lr per update (see ``petridish.train.schedules``).
    * Each update first measures the minibatch loss; training stops *before* the update
      when that loss is non-finite (``diverged``) or <= ``target_loss``.
    * ``eval_sets`` {name: (x, y)} are measured every ``eval_every`` updates and at the end.
    * ``adversarial`` (an ``Adversarial`` or a dict of its fields, e.g. ``{"eps": 0.1}``): PGD
      adversarial training (Madry et al. 2018; ``petridish.train.adversarial``): each minibatch
      is replaced by PGD examples against the current weights before the update; the loss
      history is then the adversarial loss.
    * Device: that of ``x`` or the model if the caller put them off the CPU, else
      ``petridish.device.current_device()``; the model comes back on the CPU (if it started
      there) and every returned tensor is on the CPU.
    """
    t0 = time.perf_counter()
    check_data(x, y, OWNER)
    cfg = make_config(OWNER, n=x.shape[0], optimizer=optimizer, loss=loss, batch_size=batch_size,
                      steps=steps, epochs=epochs, schedule=schedule, warmup_fraction=warmup_fraction,
                      target_loss=target_loss, eval_every=eval_every, betas=betas, eps=eps)
    lr = check_number(lr, "lr", OWNER, low=0, low_open=True)
    momentum = check_number(momentum, "momentum", OWNER, low=0, high=1, high_open=True)
    weight_decay = check_number(weight_decay, "weight_decay", OWNER, low=0)
    seed = check_number(seed, "seed", OWNER, kind=int, low=0)
    if not isinstance(model, nn.Module):
        raise invalid("model", OWNER, "a torch.nn.Module", type(model).__name__)
    eval_sets = _check_eval_sets(eval_sets, OWNER)
    adv = check_adversarial(adversarial, OWNER)
    attacker = Attacker(adv, cfg.loss, [seed]) if adv is not None else None
    home = next(model.parameters(), torch.empty(0)).device
    dev = target_device(x, next(model.parameters(), None))
    if dev != x.device or dev != home:
        model.to(dev)                      # in place: the caller's Parameter objects move
        x, y = x.to(dev), y.to(dev)
        eval_sets = {s: (ex.to(dev), ey.to(dev)) for s, (ex, ey) in eval_sets.items()}
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr, betas=cfg.betas, eps=cfg.eps, weight_decay=weight_decay)
    elif cfg.optimizer == "adagrad":
        opt = torch.optim.Adagrad(params, lr=lr, eps=cfg.eps, weight_decay=weight_decay)
    elif cfg.optimizer == "rmsprop":
        opt = torch.optim.RMSprop(params, lr=lr, alpha=cfg.betas[1], eps=cfg.eps, momentum=momentum,
                                  weight_decay=weight_decay)
    else:
        opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    stream = batch_indices(x.shape[0], cfg.batch_size, seed)
    points = set(eval_points(cfg.steps, cfg.eval_every))
    history: list[float] = []
    evals: dict[str, dict[str, list[float]]] = {name: {} for name in eval_sets}
    eval_steps: list[int] = []
    diverged = reached = False
    done = 0
    _steps.expect(cfg.steps)              # progress for the lab (a no-op when nobody listens)
    for step in range(cfg.steps):
        idx = next(stream)
        xb, yb = (x, y) if idx is None else (x[idx], y[idx])
        if attacker is not None:
            xb = attacker.solo(model, xb, yb)
        opt.param_groups[0]["lr"] = lr * lr_multiplier(cfg.schedule, step, cfg.steps,
                                                       warmup_fraction=cfg.warmup_fraction)
        opt.zero_grad(set_to_none=True)
        value = loss_value(model(xb), yb, cfg.loss)
        lv = float(value.detach())
        history.append(lv)
        if not math.isfinite(lv):
            diverged = True
            break
        if cfg.target_loss is not None and lv <= cfg.target_loss:
            reached = True
            break
        value.backward()
        opt.step()
        done = step + 1
        _steps.advance()
        if done in points and eval_sets:
            _record(model, eval_sets, cfg.loss, evals, eval_steps, done)
    if eval_sets and (not eval_steps or eval_steps[-1] != done):
        _record(model, eval_sets, cfg.loss, evals, eval_steps, done)
    if home == CPU:
        model.to(CPU)
    return TrainResult(
        model=model,
        params={n: p.detach().to(CPU, copy=True) for n, p in model.named_parameters()},
        loss_history=torch.tensor(history, dtype=torch.float64),
        steps=done, reached_target=reached, steps_to_target=done if reached else None,
        diverged=diverged, eval_steps=eval_steps,
        eval_history={s: {m: torch.tensor(v, dtype=torch.float64) for m, v in d.items()}
                      for s, d in evals.items()},
        wall_time=time.perf_counter() - t0)


def _record(model, eval_sets, loss, evals, eval_steps, done) -> None:
    eval_steps.append(done)
    for name, (ex, ey) in eval_sets.items():
        for metric, v in evaluate(model, ex, ey, loss).items():
            evals[name].setdefault(metric, []).append(float(v))


def _check_eval_sets(eval_sets: Any, owner: str, members: int | None = None) -> dict:
    if eval_sets is None:
        return {}
    if not isinstance(eval_sets, dict):
        raise invalid("eval_sets", owner, "a dict {name: (x, y)}", type(eval_sets).__name__)
    for name, pair in eval_sets.items():
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise invalid("eval_sets", owner, "a dict {name: (x, y)}", name)
        check_data(pair[0], pair[1], owner, per_member=members)
    return dict(eval_sets)
