"""Tolerances for float32 training comparisons, derived from the computation itself.

Two float32 runs of the same SGD trajectory (an ensemble and a solo model) differ only by
rounding: bmm against addmm, a different summation order, an AVX2, AVX-512 or AMX kernel.
Over hundreds of momentum steps a trajectory amplifies such differences by a factor that
depends on the trajectory and the CPU, not on the code under test (measured: 1e-5 on one
AVX-512 machine, 2.4e-2 on another, for the same test). A fixed float32 tolerance is therefore
tuned to one CPU. Instead we measure the amplification on this CPU: the solo model is trained
once more in float64, and the float32 solo's distance from that float64 trajectory, ``s``, is
what rounding alone does to this trajectory here. Two float32 roundings of one trajectory may
each lie ~s from it, so they may lie ~2s from each other; ``SLACK`` = 8 leaves room for the
spread of chaotic growth between rounding sequences. The float64 tests check exactness (1e-10).
"""
from __future__ import annotations

import copy

import torch

from petridish.train import train

SLACK = 8.0          # allowed multiple of the measured float32 rounding amplification
PARAM_FLOOR = 1e-4   # relative; below this the comparison is as strict as it ever was
LOSS_FLOOR = 1e-3


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


def _loss_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest per-step relative difference of two (T,) loss histories."""
    a, b = a.double(), b.double()
    return float(((a - b).abs() / b.abs().clamp_min(1e-6)).max())


def assert_member_matches_solo(ens, k: int, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                               **train_kw) -> None:
    """Member ``k`` of ``ens`` against solo ``train`` of ``model`` (built exactly as the member).

    float64 runs are compared to 1e-10; float32 runs to ``max(floor, SLACK * s)``, where ``s``
    is the float32-vs-float64 distance of the solo run on this CPU (see the module docstring).
    """
    model64 = copy.deepcopy(model).double()        # before ``train`` moves ``model`` in place
    solo = train(model, x, y, **train_kw)
    n = solo.loss_history.shape[0]
    if x.dtype == torch.float64:
        for name, p in solo.params.items():
            assert rel(ens.params[name][k], p) < 1e-10, (k, name)
        torch.testing.assert_close(ens.loss_history[k, :n].double(), solo.loss_history.double(),
                                   rtol=1e-10, atol=1e-12)
        return
    ref = train(model64, x.double(), y.double() if y.is_floating_point() else y, **train_kw)
    for name, p in solo.params.items():
        tol = max(PARAM_FLOOR, SLACK * rel(p, ref.params[name]))
        assert rel(ens.params[name][k], p) < tol, (k, name, rel(ens.params[name][k], p), tol)
    loss_tol = max(LOSS_FLOOR, SLACK * _loss_rel(solo.loss_history, ref.loss_history))
    got = _loss_rel(ens.loss_history[k, :n], solo.loss_history)
    assert got < loss_tol, (k, "loss_history", got, loss_tol)

