"""Fast path for ensembles of MLPs: stacked weights (K, in, out), batched matmuls and a
hand-written backward pass (no autograd, no vmap), so one step of K models costs a few
dozen tensor ops whatever K is.

Forward per layer l: z = h W_l + b_l (torch.baddbmm), h = σ(z). Backward: for softmax
cross-entropy dz = (softmax(z) − onehot(y)) / B; for MSE (``petridish.losses``: ½ the squared
error summed over outputs, mean over the batch) dz = (z − t) / B; then dW = hᵀ dz, db = Σ_batch dz,
dh = dz Wᵀ and the activation's derivative.

Every hidden layer's output is padded with zero units to a multiple of 8, and to at least 16:
batched GEMMs whose output is narrower (odd widths) take a slow path that costs 2-4× the
time of the padded shape on AVX2 machines. The padded units stay exactly zero (zero weights
in and out, zero gradients, σ(0) = 0 for every supported activation, and weight decay,
momentum and Adam leave a zero with zero gradient at zero), so training is unchanged;
``forward`` and ``export`` drop them.

The output layer is computed transposed, outputs × batch: z_T = W h_T + b with W in
nn.Linear's (out, in) layout, so the narrow side (10 classes) is a GEMM's row count, never
its output width, and needs no padding. The loss then runs over dim 1 of (K, C, B) tensors,
vectorized along the batch: no padded logits, no -inf entries (an exp of -inf or of a
huge negative number leaves AVX-512's vectorized exp for a scalar path), no strided fills.
Measured on the 2-core AVX-512 machine, one thread, K=32, B=128, 64→10: the output layer's
three GEMMs 175 µs instead of 240, log-softmax 26 µs instead of 58, exp 8 µs instead of ~50.

The training step writes into buffers it keeps between steps (``out=`` forms, activation
derivatives in place): a fresh 1 MB tensor costs a round of page faults on every step
(glibc hands large blocks back to the kernel), measured at 40-60 µs each against ~110 µs for
the op itself, so reusing them removes most of the step's non-GEMM time. The gradients it
returns are those buffers: valid until the next call.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from petridish.losses import canonical, mse_target

FAST_ACTIVATIONS = ("relu", "tanh", "identity", "gelu")


def padded_width(n: int) -> int:
    """n rounded up to a multiple of 8, at least 16."""
    return max(16, -(-n // 8) * 8)


def supports_fast(model: nn.Module) -> bool:
    """True for models exposing ``fast_layers()`` (petridish MLP / Linear) with a supported
    activation and plain nn.Linear layers, all trainable, and no dropout (the hand-written
    step has none)."""
    if not hasattr(model, "fast_layers") or getattr(model, "dropout", 0.0) > 0:
        return False
    layers, act = model.fast_layers()
    return act in FAST_ACTIVATIONS and all(type(l) is nn.Linear for l in layers) and \
        all(p.requires_grad for p in model.parameters()) and not list(model.buffers())


class FastMLPEngine:
    def __init__(self, models: list[nn.Module], loss: str):
        layer_lists = [m.fast_layers()[0] for m in models]
        self.act = models[0].fast_layers()[1]
        self.loss = canonical(loss)
        self.n_layers = len(layer_lists[0])
        self.has_bias = layer_lists[0][0].bias is not None
        self.outs = [layer_lists[0][l].out_features for l in range(self.n_layers)]
        self.d_in = layer_lists[0][0].in_features
        ins = [self.d_in] + [padded_width(o) for o in self.outs[:-1]]
        last = self.n_layers - 1
        with torch.no_grad():
            # hidden layers (K, in_padded, out_padded), so that h @ W needs no transpose in the
            # hot loop; the output layer (K, out, in_padded), nn.Linear's layout (module docstring)
            self.W = [_pad(torch.stack([ls[l].weight.detach().T for ls in layer_lists]), ins[l])
                      for l in range(last)]
            self.W.append(F.pad(torch.stack([ls[last].weight.detach() for ls in layer_lists]),
                                (0, ins[last] - layer_lists[0][last].in_features)).contiguous())
            self.b = [_pad(torch.stack([ls[l].bias.detach() for ls in layer_lists]).unsqueeze(1), 1)
                      if self.has_bias else None for l in range(last)]
            self.b.append(torch.stack([ls[last].bias.detach() for ls in layer_lists]).unsqueeze(2).contiguous()
                          if self.has_bias else None)                      # (K, out, 1)
        self.params = [t for l in range(self.n_layers) for t in ((self.W[l], self.b[l]) if self.has_bias
                                                                  else (self.W[l],))]
        self._neg1 = torch.tensor(-1.0, dtype=self.W[0].dtype, device=self.W[0].device)
        self._ws: dict[tuple, torch.Tensor] = {}           # reused step buffers, by (role, shape)

    def _buf(self, role: str, *shape: int) -> torch.Tensor:
        key = (role, shape)
        t = self._ws.get(key)
        if t is None:
            t = self._ws[key] = self.W[0].new_empty(shape)
        return t

    # -- forward -----------------------------------------------------------------------
    def _layer(self, h: torch.Tensor, l: int, out: torch.Tensor | None = None) -> torch.Tensor:
        if h.dim() == 2:                                   # shared inputs (n, d) -> (K, n, out)
            z = torch.matmul(h, self.W[l])
            return z.add_(self.b[l]) if self.has_bias else z
        if out is None:
            return torch.baddbmm(self.b[l], h, self.W[l]) if self.has_bias else torch.bmm(h, self.W[l])
        if self.has_bias:
            return torch.baddbmm(self.b[l], h, self.W[l], out=out)
        return torch.bmm(h, self.W[l], out=out)

    def _act(self, z: torch.Tensor) -> torch.Tensor:
        if self.act == "relu":
            return torch.relu_(z)
        if self.act == "tanh":
            return torch.tanh_(z)
        if self.act == "gelu":
            return F.gelu(z)
        return z

    def _output_layer(self, h: torch.Tensor) -> torch.Tensor:
        """h (n, d) shared or (K, n, d) -> transposed outputs z_T (K, out, n)."""
        w, b = self.W[-1], self.b[-1]
        h_t = h.T if h.dim() == 2 else h.transpose(1, 2)
        if h.dim() == 2:
            z = torch.matmul(w, h_t)
            return z.add_(b) if self.has_bias else z
        return torch.baddbmm(b, w, h_t) if self.has_bias else torch.bmm(w, h_t)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (c, d) shared or (K, c, d) -> (K, c, d_out)."""
        h = x.flatten(1) if x.dim() == 2 else x
        for l in range(self.n_layers - 1):
            h = self._act(self._layer(h, l))
        return self._output_layer(h).transpose(1, 2).contiguous()

    # -- loss and gradients ---------------------------------------------------------------
    @torch.no_grad()
    def loss_and_grads(self, xb: torch.Tensor, yb: torch.Tensor, *, x_stacked: bool,
                       y_stacked: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """xb (B, d) shared or (K, B, d) stacked; yb (B,)/(B, k) shared or (K, B)/(K, B, k).
        Returns the per-member mean loss (K,) and gradients aligned with ``self.params``."""
        xb = xb.flatten(2) if x_stacked else xb.flatten(1)
        hs = [xb]                                          # inputs to each layer
        pre = []                                           # pre-activations (gelu only)
        h = xb
        k_, b_ = self.W[0].shape[0], xb.shape[-2]
        for l in range(self.n_layers - 1):
            z = self._layer(h, l, self._buf(f"z{l}", k_, b_, self.W[l].shape[2]) if h.dim() == 3 else None)
            if self.act == "gelu":
                pre.append(z)
            h = self._act(z) if self.act != "gelu" else F.gelu(z)
            hs.append(h)
        z = self._output_layer(h)                          # (K, C, B), transposed
        k, c, b = z.shape
        if not y_stacked:
            yb = yb.unsqueeze(0).expand(k, *yb.shape)
        if self.loss == "cross_entropy":
            lsm = torch.log_softmax(z, dim=1)              # over classes, vectorized along the batch
            yi = yb.unsqueeze(1)                           # (K, 1, B)
            loss = -lsm.gather(1, yi).mean(dim=(1, 2))     # (K,)
            dz = lsm.exp_()                                # softmax
            dz.scatter_add_(1, yi, self._neg1.expand(yi.shape))
            dz.mul_(1.0 / b)
        else:
            t = mse_target(yb.reshape(k * b, *yb.shape[2:]), c).reshape(k, b, c).transpose(1, 2)
            diff = z.sub_(t)
            loss = 0.5 * diff.pow(2).sum(1).mean(1)        # petridish.losses.per_example, mean over B
            dz = diff.div_(b)                              # = petridish.losses.mse_output_grad, in place
        grads: list[torch.Tensor] = [None] * len(self.params)   # type: ignore[list-item]
        step = 2 if self.has_bias else 1
        last = self.n_layers - 1
        # output layer, dz (K, C, B): dW = dz h (K, C, in), db = Σ_batch dz, dh = dzᵀ W (K, B, in)
        h_in = hs[last]
        grads[step * last] = torch.matmul(dz, h_in, out=self._buf(f"gw{last}", *self.W[last].shape))
        if self.has_bias:
            grads[step * last + 1] = torch.sum(dz, dim=2, keepdim=True, out=self._buf(f"gb{last}", *self.b[last].shape))
        if last > 0:
            dh = torch.bmm(dz.transpose(1, 2), self.W[last], out=self._buf(f"dh{last}", *hs[last].shape))
            dz = self._act_backward(dh, hs[last], pre[last - 1] if pre else None)
        for l in range(last - 1, -1, -1):
            h_in = hs[l]
            gw = self._buf(f"gw{l}", *self.W[l].shape)
            if h_in.dim() == 2:
                torch.matmul(h_in.T, dz, out=gw)           # (d, B) @ (K, B, out) -> (K, d, out)
            else:
                torch.bmm(h_in.transpose(1, 2), dz, out=gw)
            grads[step * l] = gw
            if self.has_bias:
                grads[step * l + 1] = torch.sum(dz, dim=1, keepdim=True, out=self._buf(f"gb{l}", *self.b[l].shape))
            if l > 0:
                dh = torch.bmm(dz, self.W[l].transpose(1, 2), out=self._buf(f"dh{l}", *hs[l].shape))
                dz = self._act_backward(dh, hs[l], pre[l - 1] if pre else None)
        return loss, grads

    def _act_backward(self, dh, h, z):
        """dL/dz from dL/dh = ``dh``, written over ``dh`` (a step buffer)."""
        if self.act == "relu":
            return torch.ops.aten.threshold_backward.grad_input(dh, h, 0, grad_input=dh)
        if self.act == "tanh":
            return torch.ops.aten.tanh_backward.grad_input(dh, h, grad_input=dh)
        if self.act == "gelu":
            return torch.ops.aten.gelu_backward.grad_input(dh, z, grad_input=dh)
        return dh

    # -- export ----------------------------------------------------------------------------
    def export(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Stacked params under the model's own names ("layers.{l}.weight" is (K, out, in))."""
        out: dict[str, torch.Tensor] = {}
        d_in = self.d_in
        last = self.n_layers - 1
        for l, o in enumerate(self.outs):
            rows = d_in if l == 0 else self.outs[l - 1]
            w = self.W[l][:, :, :rows] if l == last else self.W[l][:, :rows, :o].transpose(1, 2)
            out[f"layers.{l}.weight"] = w.contiguous()
            if self.has_bias:
                out[f"layers.{l}.bias"] = (self.b[l][:, :, 0] if l == last else self.b[l][:, 0, :o]).contiguous()
        return out, {}


def _pad(w: torch.Tensor, rows: int) -> torch.Tensor:
    """(K, r, c) -> zero-padded contiguous (K, rows, padded_width(c))."""
    return F.pad(w, (0, padded_width(w.shape[2]) - w.shape[2], 0, rows - w.shape[1])).contiguous()
