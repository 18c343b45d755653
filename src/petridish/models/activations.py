"""Activation functions by name (shared by models and the ensemble fast path)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from petridish.errors import check_choice

ACTIVATIONS = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "gelu": F.gelu,
    "identity": lambda x: x,
}


def get_activation(name: str, owner: str):
    check_choice(name, "activation", owner, tuple(ACTIVATIONS))
    return ACTIVATIONS[name]
