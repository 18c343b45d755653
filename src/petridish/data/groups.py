"""A population of two groups whose inputs and labelling rules differ: a majority (group 0) and a
minority (group 1), with a group column (``Dataset.groups_train``/``groups_test``).

* majority: x ~ N(0, I_dim), y = 1[x·w₀ > 0], w₀ = e₀;
* minority: x ~ N(shift·e_{dim−1}, I_dim), y = 1[x·w₁ > 0], w₁ = cos θ e₀ + sin θ e₁ (θ = ``angle``).

Both rules are orthogonal to e_{dim−1}, so the shift moves the minority's inputs (a model can tell
the groups apart) without changing its labels, and each group is separable by its own rule (Bayes
error 0 within each group). A linear rule w applied to a group labelled by w' errs with
probability angle(w, w')/π on the span of e₀, e₁ (a standard Gaussian there), so the majority's rule
costs the minority exactly θ/π: ⅓ at the default 60°. With few minority examples a trained model
learns mostly w₀, and the minority's error is the gap that reweighting or group balancing closes.

Group sizes are exact: round(minority_share · n_train) minority training examples and
round(test_minority_share · n_test) minority test examples (a balanced test set by default, so
both groups' errors are measured equally well).
"""
from __future__ import annotations

import math

import torch

from petridish.data.dataset import Dataset, make_meta
from petridish.errors import check_number

OWNER = "two_groups"


def rules(dim: int, angle: float) -> torch.Tensor:
    """(2, dim) float64: the majority's and the minority's unit normal vectors w₀, w₁."""
    w = torch.zeros(2, dim, dtype=torch.float64)
    t = math.radians(angle)
    w[0, 0] = 1.0
    w[1, 0], w[1, 1] = math.cos(t), math.sin(t)
    return w


def _draw(n_major: int, n_minor: int, dim: int, shift: float, w: torch.Tensor, g: torch.Generator):
    grp = torch.cat([torch.zeros(n_major, dtype=torch.int64), torch.ones(n_minor, dtype=torch.int64)])
    x = torch.randn(grp.numel(), dim, generator=g, dtype=torch.float64)
    x[:, -1] += shift * grp                                      # the minority's inputs move along e_{dim−1}
    y = ((x * w[grp]).sum(1) > 0).to(torch.int64)                # each group's own rule
    perm = torch.randperm(grp.numel(), generator=g)              # groups interleaved
    return x[perm].float(), y[perm], grp[perm]


def two_groups(*, n_train: int, n_test: int, minority_share: float, dim: int = 10, shift: float = 3.0,
               angle: float = 60.0, test_minority_share: float = 0.5, seed: int = 0) -> Dataset:
    """Binary classification over a majority and a minority group (see the module docstring).
    ``groups_train``/``groups_test`` hold 0 (majority) or 1 (minority)."""
    n_train = check_number(n_train, "n_train", OWNER, kind=int, low=2)
    n_test = check_number(n_test, "n_test", OWNER, kind=int, low=0)
    minority_share = check_number(minority_share, "minority_share", OWNER, low=0, high=1, low_open=True,
                                  high_open=True)
    dim = check_number(dim, "dim", OWNER, kind=int, low=3)
    shift = check_number(shift, "shift", OWNER)
    angle = check_number(angle, "angle", OWNER, low=0, high=180)
    test_minority_share = check_number(test_minority_share, "test_minority_share", OWNER, low=0, high=1)
    seed = check_number(seed, "seed", OWNER, kind=int, low=0)
    n_min = min(max(round(minority_share * n_train), 1), n_train - 1)      # both groups present
    t_min = round(test_minority_share * n_test)
    w = rules(dim, angle)
    g = torch.Generator().manual_seed(seed)
    x_tr, y_tr, g_tr = _draw(n_train - n_min, n_min, dim, shift, w, g)
    x_te, y_te, g_te = _draw(n_test - t_min, t_min, dim, shift, w, g)
    params = {"n_train": n_train, "n_test": n_test, "minority_share": minority_share, "dim": dim, "shift": shift,
              "angle": angle, "test_minority_share": test_minority_share, "seed": seed}
    meta = make_meta("two_groups", x_train=x_tr, x_test=x_te, classes=2, params=params,
                     rules=w.tolist(), n_minority_train=n_min, n_minority_test=t_min,
                     majority_rule_error_on_minority=angle / 180.0)
    return Dataset(x_tr, y_tr, x_te, y_te, meta, groups_train=g_tr, groups_test=g_te)
