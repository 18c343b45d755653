"""Attacks (petridish.instruments.attacks) against closed forms, an independent reference and their invariants.

Oracles: for an affine classifier the loss-maximizing L∞ point of the ε-ball is x + ε·sign(∇) (FGSM = PGD),
the L2 one x + ε·∇/‖∇‖, and the distance to the decision boundary is minₖ |f'ₖ|/‖w'ₖ‖ (the class region
is a polytope), which DeepFool must reach in one step. On a trained MLP, success rates agree within one
percentage point with a reference written here independently (a per-example loop of
torch.autograd.grad with the same random starts), PGD at ε = 0 gives exactly the clean accuracy, and
PGD is at least as strong as FGSM.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from petridish.data import digits
from petridish.errors import InvalidParameterError
from petridish.instruments import deepfool, deepfool_norms, fgsm, pgd, robust_accuracy, success_rate
from petridish.models.registry import build_model
from petridish.seeding import sub_seed
from petridish.train import train

pytestmark = pytest.mark.usefixtures("one_thread")
EPS = 0.1


@pytest.fixture(scope="module")
def trained():
    """A digits MLP (inputs in [0, 1]), trained for a few epochs: 91% accuracy on the 300 test examples.
    In float64, so that the model and the attacks' comparisons (PGD vs FGSM differ by one example at
    ε = 0.05) do not depend on the CPU's float32 kernels (AVX2, AVX-512, AMX)."""
    ds = digits()
    model = build_model("mlp", d_in=64, d_out=10, seed=0, width=64).double()
    train(model, ds.x_train.double(), ds.y_train, optimizer="adam", lr=3e-3, batch_size=64, epochs=8, seed=0)
    return model, ds.x_test[:300].double(), ds.y_test[:300]


def _accuracy(model, x, y) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).double().mean())


# ------------------------------------------------------------------ an independent reference

def _ref_starts(x, eps, norm, seed):
    """The random start drawn as documented: L∞ ε(2U − 1); L2 ε·u^(1/d)·g/‖g‖ (g first, then u)."""
    g = torch.Generator().manual_seed(sub_seed(seed, "attack"))
    if norm == "inf":
        return eps * (2 * torch.rand(x.shape, generator=g, dtype=x.dtype) - 1)
    gauss = torch.randn(x.shape, generator=g, dtype=x.dtype)
    u = torch.rand(x.shape[0], generator=g, dtype=x.dtype)
    d = x[0].numel()
    out = torch.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = eps * u[i] ** (1 / d) * gauss[i] / gauss[i].norm()
    return out


def _ref_pgd(model, x, y, eps, norm, steps, lower=None, upper=None, seed=0):
    """One example at a time; the step and projection written out by hand."""
    alpha = 2.5 * eps / steps
    starts = _ref_starts(x, eps, norm, seed)
    out = []
    for i in range(x.shape[0]):
        x0, y0 = x[i:i + 1], y[i:i + 1]
        xa = x0 + starts[i:i + 1]
        if lower is not None:
            xa = torch.minimum(torch.maximum(xa, torch.full_like(xa, lower)), torch.full_like(xa, upper))
        for _ in range(steps):
            xa = xa.detach().requires_grad_(True)
            loss = F.nll_loss(F.log_softmax(model(xa), dim=1), y0)
            (g,) = torch.autograd.grad(loss, xa)
            if norm == "inf":
                d = torch.clamp(xa.detach() + alpha * g.sign() - x0, -eps, eps)
            else:
                gn = float(g.norm())
                d = xa.detach() + (alpha * g / gn if gn > 0 else 0 * g) - x0
                d = d * min(1.0, eps / max(float(d.norm()), 1e-300))
            xa = x0 + d
            if lower is not None:
                xa = xa.clamp(lower, upper)
        out.append(xa.detach())
    return torch.cat(out)


def _ref_fgsm(model, x, y, eps):
    out = []
    for i in range(x.shape[0]):
        xa = x[i:i + 1].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(F.nll_loss(F.log_softmax(model(xa), 1), y[i:i + 1]), xa)
        out.append((x[i:i + 1] + eps * g.sign()).detach())
    return torch.cat(out)


@pytest.mark.parametrize("norm,eps", [("inf", EPS), ("2", 0.4)])
def test_pgd_success_agrees_with_the_reference_within_one_point(trained, norm, eps):
    model, x, y = trained
    ours = success_rate(model, x, pgd(model, x, y, eps=eps, norm=norm, steps=10, seed=3), y)
    ref = success_rate(model, x, _ref_pgd(model, x, y, eps, norm, 10, seed=3), y)
    assert 0.1 < ref < 0.95, ref                   # a non-trivial attack, so agreement means something
    assert abs(ours - ref) <= 0.01, (ours, ref)


def test_fgsm_success_agrees_with_the_reference_within_one_point(trained):
    model, x, y = trained
    ours = success_rate(model, x, fgsm(model, x, y, eps=EPS), y)
    ref = success_rate(model, x, _ref_fgsm(model, x, y, EPS), y)
    assert 0.05 < ref < 0.95 and abs(ours - ref) <= 0.01, (ours, ref)


def test_pgd_at_eps_zero_gives_exactly_the_clean_accuracy(trained):
    model, x, y = trained
    clean = _accuracy(model, x, y)
    for norm in ("inf", "2"):
        acc = robust_accuracy(model, x, y, eps_list=[0.0, EPS], norm=norm, lower=0.0, upper=1.0)
        assert float(acc[0]) == clean and float(acc[1]) < clean
    assert torch.equal(pgd(model, x, y, eps=0.0, restarts=3), x)


def test_pgd_is_at_least_as_strong_as_fgsm(trained):
    # measured: with one random start 10-step PGD ties FGSM at ε = 0.05 (and lost by one example of 300
    # with this model in float32: a random start can land where the ascent is slower); three restarts,
    # as an evaluation should use, win by one; at ε = 0.1 PGD wins by 5 points
    model, x, y = trained
    eps = [0.02, 0.05, 0.1, 0.2]
    p = robust_accuracy(model, x, y, eps_list=eps, attack="pgd", restarts=3, lower=0.0, upper=1.0)
    f = robust_accuracy(model, x, y, eps_list=eps, attack="fgsm", lower=0.0, upper=1.0)
    assert bool((p <= f).all()) and float((f - p).max()) > 0.02, (p, f)


def test_restarts_keep_the_worst_per_example(trained):
    model, x, y = trained
    one = pgd(model, x, y, eps=0.05, seed=1)
    three = pgd(model, x, y, eps=0.05, seed=1, restarts=3)       # restart 0 is the same draw as `one`
    with torch.no_grad():
        fooled1, fooled3 = model(one).argmax(1) != y, model(three).argmax(1) != y
    assert bool((fooled3 | ~fooled1).all())                    # every example fooled once stays fooled
    assert torch.equal(pgd(model, x, y, eps=0.05, seed=1), one)   # deterministic given the seed
    assert not torch.equal(pgd(model, x, y, eps=0.05, seed=2), one)


def test_bounds_and_the_eps_ball_are_respected(trained):
    model, x, y = trained
    for xa in (pgd(model, x, y, eps=EPS, lower=0.0, upper=1.0), fgsm(model, x, y, eps=EPS, lower=0.0, upper=1.0)):
        assert float(xa.min()) >= 0.0 and float(xa.max()) <= 1.0
        assert float((xa - x).abs().max()) <= EPS * (1 + 1e-6)
    xa = pgd(model, x, y, eps=0.5, norm="2", lower=0.0, upper=1.0)
    assert float(xa.min()) >= 0.0 and float(xa.max()) <= 1.0
    assert float((xa - x).reshape(len(x), -1).norm(dim=1).max()) <= 0.5 * (1 + 1e-5)
    res = deepfool(model, x, lower=0.0, upper=1.0)
    assert float(res.x_adv.min()) >= 0.0 and float(res.x_adv.max()) <= 1.0
    # per-feature tensor bounds: features 0..31 may only go down, 32..63 only up
    lo, hi = x.min(0).values.clone(), x.max(0).values.clone()
    xa = pgd(model, x, y, eps=EPS, lower=lo, upper=hi)
    assert bool((xa >= lo).all() and (xa <= hi).all())


def test_the_model_is_left_as_it_was(trained):
    model, x, y = trained
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]   # training's last
    model.train()
    pgd(model, x, y, eps=EPS, restarts=2)
    deepfool(model, x[:20])
    fgsm(model, x, y, eps=EPS)
    assert model.training
    assert all((g is None and p.grad is None) or torch.equal(g, p.grad) for g, p in zip(grads, model.parameters()))
    model.eval()
    pgd(model, x[:10], y[:10], eps=EPS)
    assert not model.training
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())


def test_deepfool_flips_the_prediction(trained):
    model, x, _ = trained
    res = deepfool(model, x, overshoot=0.02)
    with torch.no_grad():
        before, after = model(x).argmax(1), model(res.x_adv).argmax(1)
    assert bool(res.success.all()) and bool((before != after).all())
    torch.testing.assert_close(res.norms, (res.x_adv - x).double().norm(dim=1))
    # nearly minimal: half of the perturbation never crosses, 80% of it rarely (measured: 0% and 4%)
    with torch.no_grad():
        half = model(x + 0.5 / 1.02 * res.perturbation).argmax(1)
        most = model(x + 0.8 / 1.02 * res.perturbation).argmax(1)
    assert bool((half == before).all()) and float((most != before).double().mean()) < 0.1
    dist = deepfool_norms(model, x)
    assert dist.success_rate == 1.0 and dist.norms.shape == (len(x),)
    assert dist.quantiles[0.1] <= dist.median <= dist.quantiles[0.9]
    assert math.isclose(dist.median, float(res.norms.median()), rel_tol=1e-12)


# ------------------------------------------------------------------ closed forms on affine classifiers

def _affine(d, c, seed=0):
    torch.manual_seed(seed)
    lin = nn.Linear(d, c).double()
    x = torch.randn(200, d, dtype=torch.float64)
    with torch.no_grad():
        y = lin(x).argmax(1)
    flip = torch.rand(200) < 0.2                      # a fifth misclassified
    return lin, x, torch.where(flip, (y + 1) % c, y)


def test_fgsm_and_pgd_on_a_binary_linear_classifier():
    lin, x, y = _affine(5, 2)
    w, b = lin.weight[1] - lin.weight[0], lin.bias[1] - lin.bias[0]
    f = (x @ w + b).detach()                                   # f > 0 ⇔ class 1
    eps = 0.3
    want = x + eps * (1 - 2 * y.double()).unsqueeze(1) * torch.sign(w.detach())
    torch.testing.assert_close(fgsm(lin, x, y, eps=eps), want, rtol=0, atol=1e-12)
    torch.testing.assert_close(pgd(lin, x, y, eps=eps, steps=10), want, rtol=0, atol=1e-12)
    correct = (f > 0) == (y == 1)
    closed = float((correct & (f.abs() > eps * w.abs().sum())).double().mean())
    assert float(robust_accuracy(lin, x, y, eps_list=[eps])[0]) == closed
    # L2: the maximizer is x ∓ ε·w/‖w‖ (no random start: the walk stays on that line)
    unit = (w / w.norm()).detach()
    want2 = x + eps * (1 - 2 * y.double()).unsqueeze(1) * unit
    got2 = pgd(lin, x, y, eps=eps, norm="2", steps=10, random_start=False)
    torch.testing.assert_close(got2, want2, rtol=0, atol=1e-12)
    torch.testing.assert_close(fgsm(lin, x, y, eps=eps, norm="2"), want2, rtol=0, atol=1e-12)


@pytest.mark.parametrize("c", [2, 4])
def test_deepfool_on_an_affine_classifier_is_the_distance_to_the_boundary(c):
    lin, x, _ = _affine(6, c, seed=1)
    with torch.no_grad():
        out = lin(x)
    k0 = out.argmax(1)
    for norm, dual in (("2", 2), ("inf", 1)):
        dist = torch.full((len(x),), math.inf, dtype=torch.float64)
        for k in range(c):
            wk = lin.weight[k].detach() - lin.weight[k0].detach()               # (n, d)
            fk = out[:, k] - out.gather(1, k0[:, None]).squeeze(1)
            dk = fk.abs() / torch.linalg.vector_norm(wk, ord=dual, dim=1)
            dist = torch.where(k == k0, dist, torch.minimum(dist, dk))
        res = deepfool(lin, x, norm=norm, overshoot=0.02)
        assert bool(res.success.all()) and bool((res.iterations == 1).all())
        torch.testing.assert_close(res.norms, 1.02 * dist, rtol=1e-10, atol=0)
    if c == 2:                                                 # binary: |w·x + b| / ‖w‖ itself
        w, b = (lin.weight[1] - lin.weight[0]).detach(), (lin.bias[1] - lin.bias[0]).detach()
        torch.testing.assert_close(deepfool(lin, x, overshoot=0.0, max_iter=1).norms,
                                   (x @ w + b).abs() / w.norm(), rtol=1e-10, atol=0)


def test_chunking_does_not_change_the_attack():
    lin, x, y = _affine(5, 3, seed=2)
    torch.testing.assert_close(pgd(lin, x, y, eps=0.2, batch_size=37, restarts=2),
                               pgd(lin, x, y, eps=0.2, restarts=2), rtol=0, atol=1e-12)
    torch.testing.assert_close(deepfool(lin, x, batch_size=37).norms, deepfool(lin, x).norms, rtol=1e-12, atol=0)


# ------------------------------------------------------------------ bad input

@pytest.mark.parametrize("call,message", [
    (lambda m, x, y: pgd(m, x, y, eps=-0.1), "The 'eps' parameter of pgd must be a float >= 0. Got -0.1."),
    (lambda m, x, y: pgd(m, x, y, eps=0.1, norm="1"), "The 'norm' parameter of pgd must be one of 'inf', '2'. Got '1'."),
    (lambda m, x, y: pgd(m, x, y, eps=0.1, steps=0), "The 'steps' parameter of pgd must be an int >= 1. Got 0."),
    (lambda m, x, y: fgsm(m, x, y[:3], eps=0.1), "The 'y' parameter of fgsm must be an integer tensor of shape (10,)."),
    (lambda m, x, y: pgd(m, x + 2, y, eps=0.1, lower=0.0, upper=1.0),
     "The 'x' parameter of pgd must be a tensor within [lower, upper]. Got 'values outside the bounds'."),
    (lambda m, x, y: deepfool(m, x, overshoot=-1), "The 'overshoot' parameter of deepfool must be a float >= 0. Got -1."),
    (lambda m, x, y: robust_accuracy(m, x, y, eps_list=[]), "The 'eps_list' parameter of robust_accuracy must be"),
    (lambda m, x, y: robust_accuracy(m, x, y, eps_list=[0.1], attack="cw"),
     "The 'attack' parameter of robust_accuracy must be one of 'pgd', 'fgsm'. Got 'cw'."),
])
def test_bad_input_gives_one_line(call, message):
    lin, x, y = _affine(4, 3)
    x, y = x[:10].clamp(0, 1), y[:10]
    with pytest.raises(InvalidParameterError) as err:
        call(lin, x, y)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
