"""Sharpness along training: the top-k Hessian eigenvalues every ``every`` steps, cheaply, by
Lanczos warm-started from the previous measurement's Ritz vectors.

Between two nearby checkpoints the top eigenvectors barely move, so a start vector made of them
(their normalized sum, plus a small seeded random part so that no direction is missing from the
Krylov space) converges in a fraction of the cold-start iterations, to the same tolerance.

* :class:`SharpnessTracker` — for a training loop: ``tracker.observe(step, model)`` measures at
  steps divisible by ``every`` (and never changes the model); ``tracker.trace()`` returns the
  :class:`SharpnessTrace` so far.
* :func:`sharpness_trajectory` — a pure function of (model architecture, data, checkpoints,
  settings, seed): the trace over a sequence of saved parameter vectors.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn

from petridish.errors import check_number, invalid
from petridish.instruments.hessian import hvp_operator
from petridish.instruments.lanczos import eigsh, random_start
from petridish.instruments.surface import as_flat

WARM_NOISE = 1e-2   # weight of the random part of a warm start (relative to the unit-norm warm part)


@dataclass
class SharpnessTrace:
    steps: list[int]                       # training steps measured
    eigenvalues: torch.Tensor              # (T, k) float64, descending per row; [:, 0] is λ_max
    iterations: list[int]                  # Lanczos steps (= HVPs) per measurement
    converged: list[bool]
    warm: list[bool]                       # whether each measurement was warm-started
    k: int
    seed: int

    @property
    def lambda_max(self) -> torch.Tensor:
        """(T,) the top eigenvalue at each measured step."""
        return self.eigenvalues[:, 0]


@dataclass
class SharpnessTracker:
    """Top-k Hessian eigenvalues of the mean loss over (x, y), every ``every`` steps."""

    x: torch.Tensor
    y: torch.Tensor
    k: int = 1
    every: int = 10
    loss: str = "cross_entropy"
    tol: float | None = None
    seed: int = 0
    warm: bool = True
    batch_size: int | None = None           # chunk size of the HVP (memory only; full-batch result)
    _steps: list = field(default_factory=list, repr=False)
    _vals: list = field(default_factory=list, repr=False)
    _iters: list = field(default_factory=list, repr=False)
    _conv: list = field(default_factory=list, repr=False)
    _warm: list = field(default_factory=list, repr=False)
    _vectors: torch.Tensor | None = field(default=None, repr=False)

    def __post_init__(self):
        owner = "SharpnessTracker"
        self.k = check_number(self.k, "k", owner, kind=int, low=1)
        self.every = check_number(self.every, "every", owner, kind=int, low=1)

    def measure(self, step: int, model: nn.Module) -> torch.Tensor:
        """The top-k eigenvalues (k,) at the model's current parameters, recorded under ``step``."""
        op = hvp_operator(model, self.x, self.y, loss=self.loss, batch_size=self.batch_size)
        # a different random vector per measurement, reproducible from (seed, number of measurements)
        r = random_start(op.dim, seed=self.seed + len(self._steps), dtype=torch.float64, device="cpu")
        warm = self.warm and self._vectors is not None and self._vectors.shape[1] == op.dim
        if warm:
            v = self._vectors.double().sum(0)
            v0 = v / v.norm() + WARM_NOISE * r
        else:
            v0 = r
        # check_every=1: the convergence test (eigh of a small tridiagonal) is free next to an HVP,
        # and a warm start converges in a handful of steps that a coarser check would round up
        res = eigsh(op.matvec, op.dim, k=self.k, which="LA", tol=self.tol, seed=self.seed, dtype=op.dtype,
                    device=op.device, vectors=self.warm, v0=v0, check_every=1)
        if self.warm:
            self._vectors = res.eigenvectors
        self._steps.append(int(step))
        self._vals.append(res.eigenvalues)
        self._iters.append(res.iterations)
        self._conv.append(res.converged)
        self._warm.append(warm)
        return res.eigenvalues

    def observe(self, step: int, model: nn.Module) -> torch.Tensor | None:
        """Measure when ``step`` is a multiple of ``every``; None otherwise."""
        return self.measure(step, model) if step % self.every == 0 else None

    def trace(self) -> SharpnessTrace:
        vals = torch.stack(self._vals) if self._vals else torch.empty(0, self.k, dtype=torch.float64)
        return SharpnessTrace(list(self._steps), vals, list(self._iters), list(self._conv), list(self._warm),
                              self.k, int(self.seed))


def sharpness_trajectory(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                         checkpoints: Sequence[torch.Tensor | nn.Module], *, steps: Sequence[int] | None = None,
                         k: int = 1, loss: str = "cross_entropy", tol: float | None = None, seed: int = 0,
                         warm: bool = True, batch_size: int | None = None) -> SharpnessTrace:
    """Top-k eigenvalues at each checkpoint (flat (p,) parameter vectors or modules shaped like
    ``model``, in training order), each Lanczos run warm-started from the previous one's."""
    owner = "sharpness_trajectory"
    if len(checkpoints) == 0:
        raise invalid("checkpoints", owner, "a non-empty sequence", len(checkpoints))
    steps = list(range(len(checkpoints))) if steps is None else [int(s) for s in steps]
    if len(steps) != len(checkpoints):
        raise invalid("steps", owner, f"{len(checkpoints)} steps, one per checkpoint", len(steps))
    tracker = SharpnessTracker(x, y, k=k, every=1, loss=loss, tol=tol, seed=seed, warm=warm, batch_size=batch_size)
    work = copy.deepcopy(model)                       # the caller's model is never written
    for step, ck in zip(steps, checkpoints):
        theta = as_flat(ck, model, "checkpoints", owner)
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(theta.to(next(work.parameters())), work.parameters())
        tracker.measure(step, work)
    return tracker.trace()
