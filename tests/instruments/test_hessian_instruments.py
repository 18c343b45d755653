"""Hessian instruments against oracles: the explicit autograd Hessian and its eigvalsh."""
import math

import pytest
import torch
from torch import nn

from petridish.errors import InvalidParameterError
from petridish.instruments import (eigsh, hessian_trace, hvp_operator, spectral_density,
                                   top_eigenvalues)
from petridish.instruments.functional import flat_loss
from petridish.instruments.lanczos import block_eigsh


pytestmark = pytest.mark.usefixtures("one_thread")


def _problem(seed=0, loss="cross_entropy"):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    x = torch.randn(30, 5, dtype=torch.float64)
    y = torch.randint(0, 3, (30,)) if loss == "cross_entropy" else torch.randn(30, 3, dtype=torch.float64)
    f, theta = flat_loss(model, x, y, loss=loss)
    H = torch.autograd.functional.hessian(f, theta)      # (p, p) explicit oracle, p = 75
    return model, x, y, H


@pytest.mark.parametrize("cache_graph", [False, True])
@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_hvp_matches_explicit_hessian(loss, cache_graph):
    model, x, y, H = _problem(loss=loss)
    op = hvp_operator(model, x, y, loss=loss, batch_size=7, cache_graph=cache_graph)   # chunked = full batch
    before = [q.detach().clone() for q in model.parameters()]
    V = torch.randn(4, op.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(op.matmat(V), V @ H, rtol=1e-5, atol=1e-12)
    torch.testing.assert_close(op(V[0]), H @ V[0], rtol=1e-5, atol=1e-12)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))            # model untouched


def test_lanczos_top_k_matches_eigvalsh():
    model, x, y, H = _problem()
    exact = torch.linalg.eigvalsh(H).flip(0)
    res = top_eigenvalues(model, x, y, k=6, seed=3)
    assert res.converged
    assert torch.all(res.eigenvalues[:-1] >= res.eigenvalues[1:])        # descending
    assert torch.allclose(res.eigenvalues, exact[:6], rtol=1e-6, atol=1e-6 * float(exact[0]))
    # deterministic given the seed
    again = top_eigenvalues(model, x, y, k=6, seed=3)
    assert torch.equal(res.eigenvalues, again.eigenvalues)


def test_eigsh_generic_operator_and_errors():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(40, 40, generator=g, dtype=torch.float64)
    A = A + A.T
    ev = torch.linalg.eigvalsh(A)
    r = eigsh(lambda v: A @ v, 40, k=3, which="SA", seed=1, vectors=True)
    assert torch.allclose(r.eigenvalues, ev[:3], rtol=1e-8, atol=1e-8)
    assert torch.allclose(r.eigenvectors @ A @ r.eigenvectors.T, torch.diag(r.eigenvalues), atol=1e-6)
    with pytest.raises(InvalidParameterError, match="The 'k' parameter of eigsh"):
        eigsh(lambda v: A @ v, 40, k=41)
    with pytest.raises(InvalidParameterError, match="The 'which' parameter of eigsh"):
        eigsh(lambda v: A @ v, 40, which="XX")


def test_hutchinson_trace_within_mc_tolerance():
    model, x, y, H = _problem()
    est = hessian_trace(model, x, y, n_samples=300, seed=0)
    exact = float(H.trace())
    assert est.stderr > 0
    assert abs(est.trace - exact) < 4 * est.stderr
    # Rademacher Hutchinson is exact for a diagonal operator; here check the variance
    # matches the theory 2 Σ_{i≠j} H_ij² within a loose factor.
    var_theory = 2 * float((H ** 2).sum() - (H.diagonal() ** 2).sum())
    var_emp = est.stderr ** 2 * 300
    assert 0.6 < var_emp / var_theory < 1.6


def test_slq_density_integrates_to_one_and_mean_is_trace_over_p():
    model, x, y, H = _problem()
    p = H.shape[0]
    d = spectral_density(model, x, y, n_vectors=20, iters=40, seed=0, grid_size=4000)
    assert abs(float(torch.trapezoid(d.density, d.grid)) - 1.0) < 1e-3
    torch.testing.assert_close(d.weights.sum(1), torch.ones(20, dtype=torch.float64))
    # The quadrature mean is exactly Hutchinson with the same seeded probes, divided by p ...
    hut = hessian_trace(model, x, y, n_samples=20, seed=0)
    assert math.isclose(d.mean(), hut.trace / p, rel_tol=1e-8)
    # ... and matches the exact tr(H)/p within Monte-Carlo error.
    assert abs(d.mean() - float(H.trace()) / p) < 4 * hut.stderr / p
    # Ritz values stay inside the true spectrum.
    ev = torch.linalg.eigvalsh(H)
    assert float(d.nodes.min()) >= float(ev[0]) - 1e-8 and float(d.nodes.max()) <= float(ev[-1]) + 1e-8


def _spectrum(eigs, seed=0):
    """A symmetric matrix with the given eigenvalues (float64) and its eigenvalues, descending."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(len(eigs), len(eigs), generator=g, dtype=torch.float64))
    lam = torch.tensor(eigs, dtype=torch.float64)
    return (q * lam) @ q.T, lam.sort(descending=True).values


def test_block_lanczos_resolves_a_repeated_top_eigenvalue_against_the_exact_decomposition():
    # top eigenvalue 10 with multiplicity 3: a block of 3 spans its eigenspace from the first step (a
    # single start vector's Krylov space holds one direction of it in exact arithmetic)
    A, lam = _spectrum([10.0] * 3 + [7.0, 6.0] + torch.linspace(0.0, 4.0, 75).tolist())
    exact = lam[:5]
    r = block_eigsh(lambda V: V @ A, 80, k=5, block=3, seed=0, vectors=True)
    assert r.converged and r.iterations < 80                                             # not the whole space
    torch.testing.assert_close(r.eigenvalues, exact, rtol=0, atol=1e-10 * 10)
    Y = r.eigenvectors
    torch.testing.assert_close(Y @ Y.T, torch.eye(5, dtype=torch.float64), rtol=0, atol=1e-10)
    assert float((Y @ A - r.eigenvalues[:, None] * Y).norm(dim=1).max()) <= 1e-10 * 10   # residual bound
    torch.testing.assert_close(r.residuals, (Y @ A - r.eigenvalues[:, None] * Y).norm(dim=1), rtol=1e-6, atol=1e-13)


@pytest.mark.parametrize("block", [2, 4])
def test_block_top_eigenvalues_match_the_exact_hessian(block):
    model, x, y, H = _problem()
    exact = torch.linalg.eigvalsh(H).flip(0)[:6]
    res = top_eigenvalues(model, x, y, k=6, seed=3, block=block)
    assert res.converged
    # value bound: estimated error ≤ 1e-10·λ_max (the default float64 tol); 1e-8 leaves room for the
    # Ritz-gap estimate (rigorous only as min(r, r²/true gap))
    torch.testing.assert_close(res.eigenvalues, exact, rtol=0, atol=1e-8 * float(exact[0]))
    assert torch.equal(res.eigenvalues, top_eigenvalues(model, x, y, k=6, seed=3, block=block).eigenvalues)


def test_value_bound_stops_earlier_and_still_meets_its_tolerance():
    # well-separated top eigenvalues: eigenvalue errors ~ r²/gap fall far faster than the residuals r
    A, lam = _spectrum([20.0, 15.0, 12.0] + torch.linspace(0.0, 10.0, 197).tolist(), seed=1)
    tol = 1e-9
    by_value = eigsh(lambda v: A @ v, 200, k=3, tol=tol, seed=0, check_every=1, bound="value")
    by_residual = eigsh(lambda v: A @ v, 200, k=3, tol=tol, seed=0, check_every=1)
    assert by_value.converged and by_residual.converged
    assert by_value.iterations < by_residual.iterations
    assert float((by_value.eigenvalues - lam[:3]).abs().max()) <= tol * 20


def test_block_and_bound_errors():
    A, _ = _spectrum(list(range(1, 11)))
    with pytest.raises(InvalidParameterError, match="The 'block' parameter of block_eigsh"):
        block_eigsh(lambda V: V @ A, 10, k=2, block=0)
    with pytest.raises(InvalidParameterError, match="The 'bound' parameter of eigsh"):
        eigsh(lambda v: A @ v, 10, k=2, bound="values")
    model, x, y, _ = _problem()
    with pytest.raises(InvalidParameterError, match="The 'block' parameter of top_eigenvalues"):
        top_eigenvalues(model, x, y, block=0)
