"""Norms and margins against brute force: SVD, explicit path sums, hand-computed margins."""
import itertools
import math

import pytest
import torch
from torch import nn

from petridish.errors import InvalidParameterError
from petridish.instruments import (frobenius_norms, margin_normalized_complexity, margins,
                                   norm_measures, path_norm, spectral_complexity, spectral_norm)


pytestmark = pytest.mark.usefixtures("one_thread")


def _mlp(sizes, bias, seed=0):
    torch.manual_seed(seed)
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1], bias=bias))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers).double()


def test_spectral_norm_exact_and_power_iteration_match_svd():
    g = torch.Generator().manual_seed(0)
    W = torch.randn(60, 30, generator=g, dtype=torch.float64)
    s = float(torch.linalg.svdvals(W)[0])
    assert math.isclose(spectral_norm(W), s, rel_tol=1e-12)
    assert math.isclose(spectral_norm(W, exact_max_dim=1, tol=1e-14, iters=5000), s, rel_tol=1e-6)


def _brute_path_norm_sq(model, d_in):
    """Σ over all input(+bias unit)→output paths of Π w², enumerated explicitly."""
    lins = [m for m in model if isinstance(m, nn.Linear)]
    total = 0.0
    # A path starts at an input unit (layer 0) or at the bias unit of layer l, then visits
    # one unit in each later layer.
    for start in range(len(lins)):
        sources = (list(range(d_in)) if start == 0 else []) + ([None] if lins[start].bias is not None else [])
        for src in sources:
            widths = [lin.out_features for lin in lins[start:]]
            for units in itertools.product(*[range(w) for w in widths]):
                prod = 1.0
                for l, u in enumerate(units):
                    lin = lins[start + l]
                    if l == 0:
                        w = lin.weight[u, src] if src is not None else lin.bias[u]
                    else:
                        w = lin.weight[u, units[l - 1]]
                    prod *= float(w) ** 2
                total += prod
    return total


@pytest.mark.parametrize("bias", [False, True])
def test_path_norm_matches_brute_force_sum_over_paths(bias):
    model = _mlp([3, 4, 3, 2], bias=bias)
    assert math.isclose(path_norm(model) ** 2, _brute_path_norm_sq(model, 3), rel_tol=1e-10)
    # float32 module: computed in float64 and the module is untouched.
    m32 = _mlp([3, 4, 3, 2], bias=bias).float()
    before = [p.clone() for p in m32.parameters()]
    path_norm(m32)
    assert all(p.dtype == torch.float32 and torch.equal(p, b) for p, b in zip(m32.parameters(), before))


def test_margins_by_hand():
    model = nn.Identity()
    logits = torch.tensor([[2.0, 1.0, -1.0], [0.5, 3.0, 2.5], [1.0, 1.0, 0.0]])
    y = torch.tensor([0, 2, 1])
    got = margins(model, logits, y)
    torch.testing.assert_close(got, torch.tensor([1.0, -0.5, 0.0]))
    with pytest.raises(InvalidParameterError, match="The 'model' parameter of margins"):
        margins(model, torch.zeros(3), y)


def test_spectral_complexity_formula_and_normalization():
    model = _mlp([5, 7, 4], bias=True)
    Ws = [model[0].weight.detach(), model[2].weight.detach()]
    sig = [float(torch.linalg.svdvals(W)[0]) for W in Ws]
    l21 = [float(sum(W[i].norm() for i in range(W.shape[0]))) for W in Ws]  # rows of W = columns of Wᵀ
    R = sig[0] * sig[1] * sum((a / s) ** (2 / 3) for a, s in zip(l21, sig)) ** 1.5
    assert math.isclose(spectral_complexity(model), R, rel_tol=1e-10)
    # reference matrices equal to the weights leave only (Σ 0)^{3/2} = 0
    assert spectral_complexity(model, reference=model) == 0.0
    # scaling one layer by c scales R by c (positive homogeneity)
    scaled = _mlp([5, 7, 4], bias=True)
    with torch.no_grad():
        scaled[0].weight.mul_(3.0)
    assert math.isclose(spectral_complexity(scaled), 3.0 * R, rel_tol=1e-10)
    x = torch.randn(50, 5, dtype=torch.float64)
    y = model(x).argmax(1)                                   # labels the model fits: margins >= 0
    gamma = float(torch.quantile(margins(model, x, y), 0.1))
    val = margin_normalized_complexity(model, x, y)
    assert math.isclose(val, R * float(x.norm()) / (gamma * 50), rel_tol=1e-10)
    assert math.isfinite(val) and val > 0
    assert margin_normalized_complexity(model, x, (y + 1) % 4) == math.inf   # γ <= 0: vacuous
    m = norm_measures(model, x, y)
    fro = frobenius_norms(model)
    assert math.isclose(m["frobenius_product"], fro[0] * fro[1], rel_tol=1e-12)
    assert math.isclose(m["spectral_product"], sig[0] * sig[1], rel_tol=1e-10)
    assert math.isclose(m["spectral_complexity_normalized"], val, rel_tol=1e-10)
