"""A small self-attention classifier over the d_in positions of the input."""
from __future__ import annotations

import torch
from torch import nn

from petridish.errors import check_number, invalid


class AttentionClassifier(nn.Module):
    """Each scalar x_t is embedded to d_model (linear) plus a learned positional embedding;
    ``layers`` pre-norm blocks (multi-head self-attention + 2-layer GELU MLP, residual);
    mean-pool over positions; linear head.

    Attention is written with plain tensor ops (no nn.MultiheadAttention), so the model
    works under ``torch.func.vmap`` for batched ensembles.
    """

    def __init__(self, d_in: int = 40, d_model: int = 32, heads: int = 4, d_out: int = 10, *,
                 layers: int = 1):
        super().__init__()
        d_in = check_number(d_in, "d_in", "AttentionClassifier", kind=int, low=1)
        d_model = check_number(d_model, "d_model", "AttentionClassifier", kind=int, low=1)
        heads = check_number(heads, "heads", "AttentionClassifier", kind=int, low=1)
        d_out = check_number(d_out, "d_out", "AttentionClassifier", kind=int, low=1)
        layers = check_number(layers, "layers", "AttentionClassifier", kind=int, low=1)
        if d_model % heads:
            raise invalid("heads", "AttentionClassifier", f"a divisor of d_model={d_model}", heads)
        self.heads = heads
        self.embed = nn.Linear(1, d_model)
        self.pos = nn.Parameter(0.02 * torch.randn(d_in, d_model))
        self.blocks = nn.ModuleList([_Block(d_model, heads) for _ in range(layers)])
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x.reshape(x.shape[0], -1, 1)) + self.pos   # (batch, T, d_model)
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h).mean(1))


class _Block(nn.Module):
    def __init__(self, d_model: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 2 * d_model), nn.GELU(), nn.Linear(2 * d_model, d_model))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, t, d = h.shape
        q, k, v = self.qkv(self.norm1(h)).split(d, dim=-1)
        split = lambda z: z.reshape(b, t, self.heads, d // self.heads).transpose(1, 2)  # (b, H, T, dh)
        q, k, v = split(q), split(k), split(v)
        att = torch.softmax(q @ k.transpose(-1, -2) * (d // self.heads) ** -0.5, dim=-1)
        h = h + self.proj((att @ v).transpose(1, 2).reshape(b, t, d))
        return h + self.mlp(self.norm2(h))
