"""What training returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn


@dataclass
class TrainResult:
    """One trained model.

    ``loss_history`` (T,) is the training loss of each update's minibatch, measured
    before that update. ``eval_history[set][metric]`` is (T_eval,) at ``eval_steps``
    (number of updates completed); metrics are "loss" and, for class labels, "accuracy".
    """

    model: nn.Module
    params: dict[str, torch.Tensor]
    loss_history: torch.Tensor
    steps: int                               # updates actually performed
    reached_target: bool
    steps_to_target: int | None              # updates done when the target loss was first met
    diverged: bool
    eval_steps: list[int] = field(default_factory=list)
    eval_history: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    wall_time: float = 0.0                   # seconds


@dataclass
class EnsembleResult:
    """K members trained together; every tensor has the member axis first.

    ``params``/``buffers``: name -> (K, ...) with the names of the member model's
    ``named_parameters()``/``named_buffers()``. ``loss_history`` (K, T) is NaN after a
    member stopped (diverged or reached its target). ``eval_history[set][metric]`` is
    (K, T_eval) at the shared ``eval_steps``; a stopped member is evaluated frozen.
    ``steps_to_target`` is -1 where the target was not reached. ``path`` says which
    engine ran: "fast" (stacked-weights MLP), "stacked" (CNN1D / GRUClassifier),
    "vmap" (torch.func) or "loop".
    """

    params: dict[str, torch.Tensor]
    buffers: dict[str, torch.Tensor]
    loss_history: torch.Tensor
    steps: torch.Tensor                      # (K,) int64 updates performed per member
    diverged: torch.Tensor                   # (K,) bool
    reached_target: torch.Tensor             # (K,) bool
    steps_to_target: torch.Tensor            # (K,) int64, -1 = not reached
    seeds: list[int]
    path: str
    eval_steps: list[int] = field(default_factory=list)
    eval_history: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    wall_time: float = 0.0
    _build: Callable[[int], nn.Module] | None = None

    @property
    def k(self) -> int:
        return len(self.seeds)

    @property
    def n_params(self) -> int:
        """Trainable parameters per member."""
        return sum(p[0].numel() for p in self.params.values())

    def final_metrics(self, k: int) -> dict[str, float]:
        """Member ``k``'s last evaluation: ``{set}_error`` (1 - accuracy, where tracked) and ``{set}_loss``."""
        out = {}
        for name, hist in self.eval_history.items():
            if "accuracy" in hist:
                out[f"{name}_error"] = 1.0 - float(hist["accuracy"][k, -1])
            if "loss" in hist:
                out[f"{name}_loss"] = float(hist["loss"][k, -1])
        return out

    def member(self, k: int) -> nn.Module:
        """Rebuild trained member ``k`` as a standalone nn.Module."""
        if self._build is None:
            raise RuntimeError("This EnsembleResult cannot rebuild members (no model builder).")
        model = self._build(k)
        state: dict[str, Any] = {n: p[k].clone() for n, p in self.params.items()}
        state.update({n: b[k].clone() for n, b in self.buffers.items()})
        model.load_state_dict(state)
        return model
