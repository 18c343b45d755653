"""Stacked-weights ensembles of the MNIST-1D paper's CNN and GRU.

vmap cannot batch ``aten::gru`` and batches conv1d slowly, and a per-member loop costs K
times the (launch-bound) step of one small model. Here K members run as one model:

* ``CNN1D``: every conv becomes a grouped conv with K groups (member k owns channels
  k·C .. (k+1)·C − 1; a shared input needs no copy: the first conv reads its one
  channel K·C times), and the linear head a batched matmul.
* ``GRUClassifier``: the two directions of K members are 2K independent recurrences
  run as one (the reverse one reads the flipped sequence, its outputs are flipped back)
  by :class:`GRUScan`, batched matmuls forward and a hand-written backward through time.

Autograd does the rest. The per-member losses are summed before one backward; no op
mixes members, so each member's gradient is its own and a non-finite member cannot leak
into another.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from petridish.models.cnn import CNN1D
from petridish.models.gru import GRUClassifier
from petridish.losses import canonical, per_example


def supports_stacked(model: nn.Module) -> bool:
    """True for petridish CNN1D and single-layer, scalar-input GRUClassifier models."""
    if not all(p.requires_grad for p in model.parameters()) or list(model.buffers()) \
            or getattr(model, "dropout", 0.0) > 0:   # the stacked forward has no dropout
        return False
    if type(model) is CNN1D:
        return all(c.bias is not None and c.padding_mode == "zeros" and c.dilation == (1,) and c.groups == 1
                   for c in (model.conv1, model.conv2, model.conv3))
    if type(model) is GRUClassifier:
        g = model.gru
        return g.num_layers == 1 and g.input_size == 1 and g.bias and g.batch_first and g.proj_size == 0
    return False


class StackedEngine:
    """Engine interface of ``train_ensemble``: ``params``, ``loss_and_grads``, ``forward``,
    ``export``."""

    def __init__(self, models: list[nn.Module], loss: str):
        base = models[0]
        self.names = [n for n, _ in base.named_parameters()]
        with torch.no_grad():
            self.params = [torch.stack([dict(m.named_parameters())[n].detach() for m in models]).contiguous()
                           for n in self.names]
        self.k, self.loss = len(models), canonical(loss)
        self._forward = _cnn_forward(base) if type(base) is CNN1D else _gru_forward(base)

    def _out(self, params: list[torch.Tensor], x: torch.Tensor, stacked: bool) -> torch.Tensor:
        return self._forward(dict(zip(self.names, params)), x.flatten(2) if stacked else x.flatten(1),
                             self.k, stacked)

    def loss_and_grads(self, xb, yb, *, x_stacked: bool, y_stacked: bool):
        leaves = [p.detach().requires_grad_(True) for p in self.params]
        with torch.enable_grad():
            out = self._out(leaves, xb, x_stacked)                     # (K, B, C)
            k = out.shape[0]
            y = yb if y_stacked else yb.unsqueeze(0).expand(k, *yb.shape)
            loss = per_example(out, y, self.loss).mean(1)                # (K,)
            grads = torch.autograd.grad(loss.sum(), leaves)
        return loss.detach(), list(grads)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (c, d) shared -> (K, c, d_out)."""
        return self._out(self.params, x, False)

    def export(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        return {n: p.detach().clone() for n, p in zip(self.names, self.params)}, {}


def _cnn_forward(model: CNN1D):
    convs = [(f"conv{i}", c.stride[0], c.padding[0]) for i, c in enumerate((model.conv1, model.conv2,
                                                                             model.conv3), start=1)]

    def forward(p: dict[str, torch.Tensor], x: torch.Tensor, k: int, stacked: bool) -> torch.Tensor:
        # x (B, L) shared -> (B, 1, L); (K, B, L) -> (B, K, L): channel k is member k's input
        h = x.transpose(0, 1) if stacked else x.unsqueeze(1)
        for i, (name, stride, pad) in enumerate(convs):
            w = p[f"{name}.weight"]                                     # (K, C_out, C_in, k)
            groups = k if (i > 0 or stacked) else 1
            h = torch.relu(F.conv1d(h, w.reshape(-1, *w.shape[2:]), p[f"{name}.bias"].reshape(-1),
                                    stride=stride, padding=pad, groups=groups))
        feat = h.reshape(h.shape[0], k, -1).transpose(0, 1)            # (K, B, C·n), CNN1D's flatten order
        return torch.baddbmm(p["linear.bias"].unsqueeze(1), feat, p["linear.weight"].transpose(1, 2))

    return forward


def _gru_forward(model: GRUClassifier):
    hidden = model.gru.hidden_size
    dirs = 2 if model.gru.bidirectional else 1
    suffixes = ("_l0", "_l0_reverse")[:dirs]

    def forward(p: dict[str, torch.Tensor], x: torch.Tensor, k: int, stacked: bool) -> torch.Tensor:
        xs = x if stacked else x.unsqueeze(0).expand(k, *x.shape)      # (K, B, T)
        big_b, steps = xs.shape[1], xs.shape[2]
        # the M = dirs·K recurrences, direction-major: (M, B, T)
        seq = torch.cat([xs, xs.flip(-1)][:dirs])
        cat = lambda name: torch.cat([p[f"gru.{name}{s}"] for s in suffixes])
        w_ih, b_ih = cat("weight_ih"), cat("bias_ih")                  # (M, 3H, 1), (M, 3H)
        w_hh, b_hh = cat("weight_hh").transpose(1, 2), cat("bias_hh").unsqueeze(1)   # (M, H, 3H), (M, 1, 3H)
        gi = torch.addcmul(b_ih[None, :, None, :], seq.permute(2, 0, 1).unsqueeze(-1),
                           w_ih[None, :, None, :, 0])                  # (T, M, B, 3H), gates r, z, n
        out = GRUScan.apply(gi, w_hh, b_hh).permute(1, 2, 0, 3)        # (M, B, T, H)
        if dirs == 2:
            out = torch.cat([out[:k], out[k:].flip(2)], -1)             # (K, B, T, 2H), nn.GRU's layout
        feat = out.reshape(k, big_b, -1)
        return torch.baddbmm(p["linear.bias"].unsqueeze(1), feat, p["linear.weight"].transpose(1, 2))

    return forward


class GRUScan(torch.autograd.Function):
    """The GRU recurrence of M independent cells, with a hand-written backward through time.

    gi (T, M, B, 3H): input projections W_i·x_t + b_i (gates r, z, n); w_hh (M, H, 3H),
    b_hh (M, 1, 3H). Returns the hidden states (T, M, B, H) from h_0 = 0:
    r, z = σ(gi_rz + h W_rz + b_rz), n = tanh(gi_n + r ⊙ (h W_n + b_n)), h' = n + z ⊙ (h − n),
    as nn.GRU. Autograd over this loop records ~10 nodes per step; this records one.
    """

    @staticmethod
    def forward(ctx, gi: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
        steps, m, b, three_h = gi.shape
        hid = three_h // 3
        hs = gi.new_zeros(steps + 1, m, b, hid)                          # h_0 .. h_T
        gh = gi.new_empty(steps, m, b, three_h)                           # h_{t-1} W + b per step
        rz = gi.new_empty(steps, m, b, 2 * hid)
        n = gi.new_empty(steps, m, b, hid)
        # per-step views made once: indexing inside the loop costs more than the tiny ops
        h_l, gh_l, rz_l, n_l = hs.unbind(0), gh.unbind(0), rz.unbind(0), n.unbind(0)
        gi_rz, gi_n = gi[..., :2 * hid].unbind(0), gi[..., 2 * hid:].unbind(0)
        gh_rz, gh_n = gh[..., :2 * hid].unbind(0), gh[..., 2 * hid:].unbind(0)
        r_l, z_l = rz[..., :hid].unbind(0), rz[..., hid:].unbind(0)
        for t in range(steps):
            torch.baddbmm(b_hh, h_l[t], w_hh, out=gh_l[t])
            torch.add(gi_rz[t], gh_rz[t], out=rz_l[t]).sigmoid_()
            torch.addcmul(gi_n[t], r_l[t], gh_n[t], out=n_l[t]).tanh_()
            torch.sub(h_l[t], n_l[t], out=h_l[t + 1]).mul_(z_l[t]).add_(n_l[t])
        ctx.save_for_backward(w_hh, hs, rz, n, gh)
        return hs[1:].clone()

    @staticmethod
    def backward(ctx, d_out: torch.Tensor):
        w_hh, hs, rz, n, gh = ctx.saved_tensors
        steps, m, b, hid = n.shape
        r, z = rz[..., :hid], rz[..., hid:]
        # step-independent factors of the chain rule, for all t at once
        a_n = (1 - z) * (1 - n * n)                                       # ∂h'/∂(pre-tanh n)
        a_z = (hs[:-1] - n) * z * (1 - z)                                 # ∂h'/∂(pre-σ z)
        a_r = gh[..., 2 * hid:] * r * (1 - r)                             # ∂(pre-tanh n)/∂(pre-σ r)
        d_gh = d_out.new_empty(steps, m, b, 3 * hid)                      # ∂L/∂(h W + b) per step
        d_gin = d_out.new_empty(steps, m, b, hid)                         # ∂L/∂gi_n
        w_t = w_hh.transpose(1, 2)                                        # (M, 3H, H)
        a_n_l, a_z_l, a_r_l, r_l, z_l = (v.unbind(0) for v in (a_n, a_z, a_r, r, z))
        d_out_l, d_gh_l, d_gin_l = d_out.unbind(0), d_gh.unbind(0), d_gin.unbind(0)
        d_r, d_z, d_n = (d_gh[..., i * hid:(i + 1) * hid].unbind(0) for i in range(3))
        dh = torch.zeros_like(d_out[0])
        for t in range(steps - 1, -1, -1):
            dh.add_(d_out_l[t])
            torch.mul(dh, a_n_l[t], out=d_gin_l[t])
            torch.mul(d_gin_l[t], a_r_l[t], out=d_r[t])
            torch.mul(dh, a_z_l[t], out=d_z[t])
            torch.mul(d_gin_l[t], r_l[t], out=d_n[t])
            dh = torch.baddbmm(dh.mul_(z_l[t]), d_gh_l[t], w_t)
        d_gi = torch.cat([d_gh[..., :2 * hid], d_gin], -1)
        d_w = torch.einsum("tmbh,tmbg->mhg", hs[:-1], d_gh)
        d_b = d_gh.sum(dim=(0, 2)).unsqueeze(1)
        return d_gi, d_w, d_b
