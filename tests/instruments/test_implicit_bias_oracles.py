"""min_nuclear_norm and max_margin_direction against cvxpy (independent interior-point solvers) and exact cases."""
import numpy as np
import pytest

from petridish.errors import PetridishError
from petridish.instruments import max_margin_direction, min_nuclear_norm
from petridish.instruments.max_margin import NotSeparableError, normalized_margin

cp = pytest.importorskip("cvxpy")


def _completion(d, r, p, psd, seed):
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((d, r))
    m = u @ u.T if psd else u @ rng.standard_normal((r, d))
    mask = rng.random((d, d)) < p
    if psd:
        mask = np.triu(mask)
        mask = mask | mask.T
    return m, mask


def _cvxpy_nuclear(m, mask, psd):
    d1, d2 = m.shape
    x = cp.Variable((d1, d2), PSD=True) if psd else cp.Variable((d1, d2))
    i, j = np.nonzero(mask)
    prob = cp.Problem(cp.Minimize(cp.trace(x) if psd else cp.normNuc(x)), [x[i, j] == m[i, j]])
    prob.solve(solver=cp.CLARABEL)
    assert prob.status == "optimal"
    return prob.value, x.value


# (d, rank, fraction, seed): recoverable and non-recoverable instances, square and rectangular-rank
@pytest.mark.parametrize("psd", [False, True])
@pytest.mark.parametrize("d, r, p, seed", [(8, 1, 0.5, 0), (12, 2, 0.3, 1), (30, 2, 0.35, 2)])
def test_min_nuclear_norm_agrees_with_cvxpy(psd, d, r, p, seed):
    m, mask = _completion(d, r, p, psd, seed)
    res = min_nuclear_norm(np.where(mask, m, 123.0), mask, psd=psd)      # unobserved entries ignored
    ref, x_ref = _cvxpy_nuclear(m, mask, psd)
    assert res.converged
    assert res.nuclear_norm == pytest.approx(ref, rel=1e-4)
    np.testing.assert_array_equal(res.matrix[mask], m[mask])             # agrees with the observations
    # the reported norm is the norm of the returned matrix
    assert res.nuclear_norm == pytest.approx(np.linalg.svd(res.matrix, compute_uv=False).sum(), rel=1e-12)
    if psd:
        assert np.linalg.eigvalsh(res.matrix).min() > -1e-4 * ref
        np.testing.assert_allclose(res.matrix, res.matrix.T)


def test_exact_cases():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((6, 4))
    full = min_nuclear_norm(a, np.ones((6, 4), bool))                    # nothing to complete
    assert full.nuclear_norm == pytest.approx(np.linalg.svd(a, compute_uv=False).sum(), rel=1e-12)
    # only a diagonal observed: the minimum is diag(b), with norm Σ|b_i| (PSD: trace, b_i >= 0)
    b = np.diag([3.0, -1.0, 0.5, 2.0])
    res = min_nuclear_norm(b, np.eye(4, dtype=bool))
    assert res.nuclear_norm == pytest.approx(6.5, rel=1e-4)
    np.testing.assert_allclose(res.matrix, b, atol=1e-4)
    res = min_nuclear_norm(np.abs(b), np.eye(4, dtype=bool), psd=True)
    assert res.nuclear_norm == pytest.approx(6.5, rel=1e-4)
    # PSD rank-1 completion: diag (1, 4) and one off-diagonal 2 -> [[1, 2], [2, 4]] is PSD with trace 5
    v = np.array([[1.0, 2.0], [0.0, 4.0]])
    res = min_nuclear_norm(v, np.array([[True, True], [False, True]]), psd=True)
    np.testing.assert_allclose(res.matrix, [[1, 2], [2, 4]], atol=1e-9)
    assert res.nuclear_norm == pytest.approx(5.0, rel=1e-6)


def test_min_nuclear_norm_bad_input_is_one_line():
    with pytest.raises(PetridishError, match=r"^The 'mask' parameter of min_nuclear_norm must be a bool array"):
        min_nuclear_norm(np.zeros((3, 3)), np.ones((3, 3)))
    with pytest.raises(PetridishError, match=r"'values' parameter of min_nuclear_norm must be a square array"):
        min_nuclear_norm(np.zeros((3, 2)), np.ones((3, 2), bool), psd=True)
    with pytest.raises(PetridishError, match=r"symmetric on entries observed"):
        min_nuclear_norm(np.array([[1.0, 2.0], [3.0, 1.0]]), np.ones((2, 2), bool), psd=True)
    with pytest.raises(PetridishError, match=r"'tol' parameter of min_nuclear_norm must be a float > 0"):
        min_nuclear_norm(np.zeros((2, 2)), np.ones((2, 2), bool), tol=0)


def _separable(n, d, seed, sparse=False):
    rng = np.random.default_rng(seed)
    w = np.zeros(d)
    w[:2] = 1.0 if sparse else 0.0
    if not sparse:
        w = rng.standard_normal(d)
    x = rng.standard_normal((n, d))
    y = np.sign(x @ w)
    return x + 0.3 * y[:, None] * w / np.linalg.norm(w), y       # pushed apart: margin >= 0.3


def _cvxpy_direction(x, y, norm):
    w = cp.Variable(x.shape[1])
    obj = {2: cp.sum_squares(w), 1: cp.norm1(w), "inf": cp.norm_inf(w)}[norm]
    cp.Problem(cp.Minimize(obj), [cp.multiply(y, x @ w) >= 1]).solve(solver=cp.CLARABEL)
    return w.value / np.linalg.norm(w.value)


@pytest.mark.parametrize("n, d, seed", [(40, 2, 0), (60, 5, 1), (30, 50, 2), (200, 10, 3)])
def test_l2_max_margin_direction_agrees_with_the_qp(n, d, seed):
    x, y = _separable(n, d, seed)
    w = max_margin_direction(x, y)
    assert w.shape == (d,) and np.linalg.norm(w) == pytest.approx(1.0)
    assert float(w @ _cvxpy_direction(x, y, 2)) >= 0.9999
    # KKT: w is a non-negative combination of the support vectors (margin attained)
    g = y[:, None] * x
    assert (g @ w).min() > 0


@pytest.mark.parametrize("norm", [1, "inf"])
def test_l1_and_linf_directions_attain_the_lp_optimum(norm):
    x, y = _separable(30, 50, 4, sparse=True)
    w = max_margin_direction(x, y, norm=norm)
    ref = _cvxpy_direction(x, y, norm)
    # the optimal value (the norm-margin) is unique even where the LP's vertex is not
    assert normalized_margin(x, y, w, norm=norm) == pytest.approx(normalized_margin(x, y, ref, norm=norm), rel=1e-6)
    if norm == 1:                                   # generic data: the ℓ1 optimum is a unique vertex
        assert float(w @ ref) >= 0.9999
    # a different geometry gives a different direction here (d > n)
    assert float(w @ max_margin_direction(x, y, norm=2)) < 0.99


def test_exact_two_point_case():
    # x = (1, 0) labelled +1 and (0, 1) labelled -1: max-margin directions are (1, -1)/√2 for every norm
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    y = np.array([1.0, -1.0])
    for norm in (2, "inf"):
        np.testing.assert_allclose(max_margin_direction(x, y, norm=norm), [2 ** -0.5, -(2 ** -0.5)], atol=1e-9)
    # ℓ2 on x = (2, 1) (+1) alone: w ∝ x
    np.testing.assert_allclose(max_margin_direction(np.array([[2.0, 1.0]]), np.array([1.0])),
                               np.array([2.0, 1.0]) / 5 ** 0.5, atol=1e-12)


@pytest.mark.parametrize("norm", [1, 2, "inf"])
def test_not_separable_is_a_clear_error(norm):
    x = np.array([[1.0, 0.0], [-1.0, 0.0]])
    y = np.array([1.0, 1.0])                      # through the origin: impossible
    with pytest.raises(NotSeparableError, match="not linearly separable"):
        max_margin_direction(x, y, norm=norm)


def test_max_margin_bad_input_is_one_line():
    x, y = np.ones((2, 2)), np.array([1.0, -1.0])
    with pytest.raises(PetridishError) as e:
        max_margin_direction(x, y, norm=3)
    assert str(e.value) == "The 'norm' parameter of max_margin_direction must be 1, 2 or 'inf'. Got 3."
    with pytest.raises(PetridishError, match=r"'y' parameter of max_margin_direction must be an array"):
        max_margin_direction(x, np.array([1.0, 0.0]))
