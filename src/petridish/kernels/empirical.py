"""Empirical (finite-width) NTK of any torch.nn.Module, with torch.func.

    Theta[i, j, a, b] = sum_p d f_a(x1_i) / d p  *  d f_b(x2_j) / d p

Two strategies (neural-tangents' names in brackets):
  'jacobian'  [JACOBIAN_CONTRACTION]: per-example Jacobians by vmap(jacrev) over
              functional_call, contracted parameter tensor by parameter tensor.
              Memory ~ (n1 + n2) * outputs * n_params numbers.
  'ntk-vp'    [NTK_VECTOR_PRODUCTS]: never stores a Jacobian; for each (x2_j, b) a vjp gives
              the parameter-space vector J2^T e_jb and a jvp pushes it through f(x1).
              Memory ~ n_params per product; better for very large models.
  'auto'      'jacobian' when the Jacobians fit in ``memory_gb``, else 'ntk-vp'.

The model must act on each example independently (eval mode: no batch statistics);
its output is flattened to (n, outputs). Gradients are taken w.r.t. parameters with
``requires_grad``; buffers are held fixed.

``output='mean'`` (default) returns (n1, n2): the mean over the output diagonal
Theta[i, j, a, a], which is what the analytic per-output NTK (``mlp_kernels``) predicts
(neural-tangents' ``trace_axes=(-1,)`` up to the 1/outputs factor). ``output='full'``
returns (n1, n2, outputs, outputs).
"""
from __future__ import annotations

from typing import Any

import torch
from torch.func import functional_call, jacrev, jvp, vjp, vmap

from petridish.device import CPU, target_device
from petridish.errors import check_choice, check_number, invalid

Tensor = torch.Tensor
_OWNER = "empirical_ntk"


def empirical_ntk(model: torch.nn.Module, x1: Tensor, x2: Tensor | None = None, *,
                  mode: str = "auto", output: str = "mean", chunk_size: int | None = None,
                  memory_gb: float = 2.0) -> Tensor:
    """Empirical NTK of ``model`` between the examples x1 (n1, ...) and x2 (n2, ...; default x1)."""
    if not isinstance(model, torch.nn.Module):
        raise invalid("model", _OWNER, "a torch.nn.Module", type(model).__name__)
    check_choice(mode, "mode", _OWNER, ("auto", "jacobian", "ntk-vp"))
    check_choice(output, "output", _OWNER, ("mean", "full"))
    memory_gb = check_number(memory_gb, "memory_gb", _OWNER, low=0.0, low_open=True)
    if not isinstance(x1, Tensor) or x1.ndim < 1 or x1.shape[0] == 0:
        raise invalid("x1", _OWNER, "a tensor of shape (n, ...) with n >= 1", type(x1).__name__)
    same = x2 is None
    x2 = x1 if same else x2
    dev = target_device(x1, x2, next(model.parameters(), None))   # the model itself is not moved
    x1, x2 = x1.to(dev), x2.to(dev)
    params = {k: v.detach().to(dev) for k, v in model.named_parameters() if v.requires_grad}
    if not params:
        raise invalid("model", _OWNER, "a module with trainable parameters", "no parameters")
    buffers = {k: v.detach().to(dev) for k, v in model.named_buffers()}
    n_params = sum(p.numel() for p in params.values())

    def f(p: dict[str, Tensor], x: Tensor) -> Tensor:           # (n, ...) -> (n, outputs)
        out = functional_call(model, (p, buffers), (x,))
        return out.reshape(x.shape[0], -1)

    with torch.no_grad():
        n_out = f(params, x1[:1]).shape[1]
    if mode == "auto":
        bytes_needed = (x1.shape[0] + (0 if same else x2.shape[0])) * n_out * n_params * x1.element_size()
        mode = "jacobian" if bytes_needed <= memory_gb * 2 ** 30 else "ntk-vp"
    if mode == "jacobian":
        theta = _by_jacobians(f, params, x1, x2, same, chunk_size)
    else:
        theta = _by_products(f, params, x1, x2, n_out, chunk_size)
    if output == "mean":
        theta = theta.diagonal(dim1=2, dim2=3).mean(-1)
    return theta.to(CPU)


def _jacobians(f, params: dict[str, Tensor], x: Tensor, chunk_size: int | None) -> dict[str, Tensor]:
    """Per-example Jacobians: name -> (n, outputs, *param_shape)."""
    def one(p, xi):
        return f(p, xi[None])[0]                                   # (outputs,)
    return vmap(jacrev(one), in_dims=(None, 0), chunk_size=chunk_size)(params, x)


def _by_jacobians(f, params, x1, x2, same, chunk_size) -> Tensor:
    j1 = _jacobians(f, params, x1, chunk_size)
    j2 = j1 if same else _jacobians(f, params, x2, chunk_size)
    theta = None
    for name in params:
        a = j1[name].flatten(2)                                    # (n1, out, P_name)
        b = j2[name].flatten(2)
        term = torch.einsum("iap,jbp->ijab", a, b)
        theta = term if theta is None else theta.add_(term)
    return theta


def _by_products(f, params, x1, x2, n_out, chunk_size) -> Tensor:
    """Theta columns by vjp (x2 side) then jvp (x1 side), vmapped over unit cotangents."""
    n2 = x2.shape[0]
    _, pull = vjp(lambda p: f(p, x2), params)

    def column(cotangent: Tensor) -> Tensor:                       # (n2, out) one-hot -> (n1, out)
        (direction,) = pull(cotangent)
        return jvp(lambda p: f(p, x1), (params,), (direction,))[1]

    eye = torch.eye(n2 * n_out, dtype=x1.dtype, device=x1.device).reshape(n2 * n_out, n2, n_out)
    cols = vmap(column, chunk_size=chunk_size)(eye)                # (n2*out, n1, out)
    return cols.reshape(n2, n_out, x1.shape[0], n_out).permute(2, 0, 3, 1)   # (n1, n2, a, b)
