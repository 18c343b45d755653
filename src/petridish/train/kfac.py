"""K-FAC: Kronecker-factored approximate curvature (Martens & Grosse 2015) for ``nn.Linear`` layers.

For a Linear layer s = W a + b, the per-example gradient of the loss ℓᵢ is gᵢ āᵢᵀ, with ā = [a; 1] (the
bias column; no 1 when the layer has no bias) and g = ∂ℓ/∂s. K-FAC approximates the layer's Fisher block
E[(ā āᵀ) ⊗ (g gᵀ)] by A ⊗ G, with A = E[ā āᵀ] ((in+1)×(in+1)) and G = E[g gᵀ] (out×out), both means over the
batch, and preconditions the gradient matrix ∇ = [∇W, ∇b] (out×(in+1)) as Δ = (G + γ_G I)⁻¹ ∇ (A + γ_A I)⁻¹,
then W ← W − lr·Δ (optionally with heavy-ball momentum). Layers are independent (block-diagonal K-FAC).

* ``fisher``: where the g's come from.
  ``"sampled"`` (Martens & Grosse's choice, the default): one label per example drawn from the model's
  predictive distribution (categorical for cross-entropy, y ~ N(f, I) for ``mse``), an unbiased estimate of
  the true Fisher's factor; ``"exact"``: that expectation in closed form, by back-propagating the columns of
  a square root of the output Hessian (S Sᵀ = diag(p) − ppᵀ for cross-entropy, S = I for ``mse``; one backward
  per output unit; Botev, Ritter & Barber 2017's KFLR); ``"empirical"``: the gradients of the observed labels
  (the empirical Fisher, which is not the curvature; Kunstner et al. 2019).
* ``loss``: ``"cross_entropy"`` (mean over examples) or ``"mse"``, the Gaussian negative log-likelihood with
  unit variance, ½‖f − y‖² summed over outputs and averaged over examples, whose Fisher is exactly A ⊗ I for a
  linear model: there one undamped step with lr 1 is Newton's step and lands on the least-squares minimizer.
* Running factors: each update mixes the batch estimate in with weight 1 − min(1 − 1/k, ``ema``) (k = the
  number of updates so far; the first update takes the batch estimate as it is), as in Martens & Grosse §5.
* Damping: factored Tikhonov (Martens & Grosse §6.3): γ_A = π√λ, γ_G = √λ/π, π² = (tr A/dim A)/(tr G/dim G).
  λ = 0 is undamped (eigenvalues ≤ 0 are then left out: a pseudo-inverse).
* The damped inverses are recomputed every ``inverse_every`` steps (eigh in float64), the factors every step.

Supported: models whose only parameterized modules are ``nn.Linear`` with 2-D inputs (batch, features).
Any other module that owns parameters (BatchNorm, Conv, embeddings, a bare nn.Parameter) is refused with a
one-line error: K-FAC's Kronecker structure is derived per layer type, and only Linear's is implemented.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from petridish.errors import check_choice, check_number, invalid

FISHERS = ("sampled", "exact", "empirical")
LOSSES = ("cross_entropy", "mse")


def _loss(logits: torch.Tensor, y: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "cross_entropy":
        return nn.functional.cross_entropy(logits, y)
    return 0.5 * (logits - y).pow(2).sum(1).mean()      # Gaussian NLL, unit variance, up to a constant


def _damped_inverse(m: torch.Tensor, gamma: float) -> torch.Tensor:
    """(m + γI)⁻¹ by eigh in float64; eigenvalues ≤ 0 after damping are dropped (pseudo-inverse)."""
    lam, q = torch.linalg.eigh(m.double())
    lam = lam + gamma
    inv = torch.where(lam > lam.abs().max() * 1e-13, 1.0 / lam, torch.zeros_like(lam))
    return ((q * inv) @ q.T).to(m.dtype)


def linear_layers(model: nn.Module, owner: str = "KFAC") -> list[nn.Linear]:
    """The model's Linear layers; a one-line error if any other module owns parameters."""
    layers = []
    for name, mod in model.named_modules():
        own = list(mod.parameters(recurse=False))
        if not own:
            continue
        if type(mod) is not nn.Linear:
            raise invalid("model", owner, "a model whose only parameterized modules are nn.Linear "
                          f"(K-FAC here supports Linear layers only; module '{name or 'model'}' is not one)",
                          type(mod).__name__)
        layers.append(mod)
    if not layers:
        raise invalid("model", owner, "a model with at least one nn.Linear layer", type(model).__name__)
    return layers


class KFAC:
    """Block-diagonal K-FAC on ``model``; ``step(x, y)`` does one update on the batch and returns its loss."""

    def __init__(self, model: nn.Module, *, loss: str = "cross_entropy", lr: float = 1.0, damping: float = 1e-3,
                 fisher: str = "sampled", ema: float = 0.95, inverse_every: int = 10, momentum: float = 0.0,
                 seed: int = 0):
        self.model = model
        self.layers = linear_layers(model)
        self.loss = check_choice(loss, "loss", "KFAC", LOSSES)
        self.lr = check_number(lr, "lr", "KFAC", low=0, low_open=True)
        self.damping = check_number(damping, "damping", "KFAC", low=0)
        self.fisher = check_choice(fisher, "fisher", "KFAC", FISHERS)
        self.ema = check_number(ema, "ema", "KFAC", low=0, high=1, high_open=True)
        self.inverse_every = check_number(inverse_every, "inverse_every", "KFAC", kind=int, low=1)
        self.momentum = check_number(momentum, "momentum", "KFAC", low=0, high=1, high_open=True)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.steps = 0
        self.updates = 0
        self.A: list[torch.Tensor | None] = [None] * len(self.layers)     # (in+1, in+1) per layer
        self.G: list[torch.Tensor | None] = [None] * len(self.layers)     # (out, out) per layer
        self._inv: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(self.layers)
        self._velocity: list[torch.Tensor | None] = [None] * len(self.layers)
        self.last_inversion_flops = 0.0    # ≈ 9 d³ per symmetric eigendecomposition of a d×d factor

    # -- curvature --------------------------------------------------------------------------------------
    def _forward(self, x: torch.Tensor):
        acts, outs = {}, {}

        def hook(mod, inp, out):
            if inp[0].dim() != 2:
                raise invalid("x", "KFAC", "a batch whose Linear inputs are 2-D (batch, features)",
                              tuple(inp[0].shape))
            acts[mod], outs[mod] = inp[0].detach(), out
        handles = [m.register_forward_hook(hook) for m in self.layers]
        try:
            logits = self.model(x)
        finally:
            for h in handles:
                h.remove()
        missing = [i for i, m in enumerate(self.layers) if m not in outs]
        if missing:
            raise invalid("model", "KFAC", "a model that calls each of its Linear layers once per forward",
                          f"layers {missing} not called")
        return logits, [acts[m] for m in self.layers], [outs[m] for m in self.layers]

    def _output_gradients(self, logits, y, outs, g_obs) -> list[torch.Tensor]:
        """G = (1/n) Σᵢ gᵢ gᵢᵀ per layer; gᵢ = ∂ℓᵢ/∂sᵢ (n × the autograd gradient of the mean loss)."""
        n = logits.shape[0]
        if self.fisher == "empirical":
            return [n * (g.T @ g) for g in g_obs]          # (1/n) Σ (n gᵢ)(n gᵢ)ᵀ
        if self.fisher == "sampled":
            with torch.no_grad():
                if self.loss == "cross_entropy":
                    ys = torch.multinomial(torch.softmax(logits.double(), 1).cpu(), 1,
                                           generator=self.generator)[:, 0].to(logits.device)
                else:
                    noise = torch.randn(logits.shape, generator=self.generator, dtype=logits.dtype)
                    ys = logits + noise.to(logits.device)
            gs = torch.autograd.grad(_loss(logits, ys, self.loss), outs, retain_graph=False)
            return [n * (g.T @ g) for g in gs]
        # exact: Σ_c over the columns of S, S Sᵀ = the output Hessian of ℓᵢ with respect to the logits
        with torch.no_grad():
            k = logits.shape[1]
            if self.loss == "cross_entropy":
                p = torch.softmax(logits, 1)                                    # (n, k)
                eye = torch.eye(k, dtype=p.dtype, device=p.device)
                cols = [p[:, c:c + 1].sqrt() * (eye[c] - p) for c in range(k)]   # S[:, :, c] = √p_c (e_c − p)
            else:
                cols = [torch.eye(k, dtype=logits.dtype, device=logits.device)[c].expand(n, k) for c in range(k)]
        out = [torch.zeros(o.shape[1], o.shape[1], dtype=o.dtype, device=o.device) for o in outs]
        for c, v in enumerate(cols):
            gs = torch.autograd.grad(logits, outs, grad_outputs=v, retain_graph=c < len(cols) - 1)
            for i, g in enumerate(gs):
                out[i] += g.T @ g
        return [o / n for o in out]

    def _update_factors(self, acts, Gs) -> None:
        self.updates += 1
        w = min(1.0 - 1.0 / self.updates, self.ema)           # weight on the old factor; 0 at the first update
        for i, (m, a) in enumerate(zip(self.layers, acts)):
            if m.bias is not None:
                a = torch.cat([a, torch.ones(a.shape[0], 1, dtype=a.dtype, device=a.device)], 1)
            A_new = a.T @ a / a.shape[0]
            self.A[i] = A_new if self.A[i] is None else w * self.A[i] + (1 - w) * A_new
            self.G[i] = Gs[i].detach() if self.G[i] is None else w * self.G[i] + (1 - w) * Gs[i].detach()

    def _refresh_inverses(self) -> None:
        flops = 0.0
        for i in range(len(self.layers)):
            A, G = self.A[i], self.G[i]
            if self.damping > 0:
                pi = math.sqrt(max(float(torch.trace(A)) / A.shape[0], 1e-300)
                               / max(float(torch.trace(G)) / G.shape[0], 1e-300))
                ga, gg = pi * math.sqrt(self.damping), math.sqrt(self.damping) / pi
            else:
                ga = gg = 0.0
            self._inv[i] = (_damped_inverse(A, ga), _damped_inverse(G, gg))
            flops += 9.0 * (A.shape[0] ** 3 + G.shape[0] ** 3)
        self.last_inversion_flops = flops

    # -- the step -------------------------------------------------------------------------------------
    def step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """One K-FAC update on the batch (x, y); returns the batch loss before the update."""
        logits, acts, outs = self._forward(x)
        loss = _loss(logits, y, self.loss)
        params = [p for m in self.layers for p in ([m.weight] + ([m.bias] if m.bias is not None else []))]
        want_outs = self.fisher == "empirical"
        grads = torch.autograd.grad(loss, params + (outs if want_outs else []), retain_graph=not want_outs)
        g_obs = list(grads[len(params):])
        self._update_factors(acts, self._output_gradients(logits, y, outs, g_obs))
        if self.steps % self.inverse_every == 0:
            self._refresh_inverses()
        else:
            self.last_inversion_flops = 0.0
        self.steps += 1
        j = 0
        with torch.no_grad():
            for i, m in enumerate(self.layers):
                gw = grads[j]
                j += 1
                if m.bias is not None:
                    grad = torch.cat([gw, grads[j][:, None]], 1)               # (out, in+1)
                    j += 1
                else:
                    grad = gw
                A_inv, G_inv = self._inv[i]
                d = G_inv @ grad @ A_inv
                if self.momentum > 0:
                    v = self._velocity[i]
                    d = d if v is None else self.momentum * v + d
                    self._velocity[i] = d
                m.weight.sub_(self.lr * d[:, :m.in_features])
                if m.bias is not None:
                    m.bias.sub_(self.lr * d[:, m.in_features])
        return float(loss.detach())
