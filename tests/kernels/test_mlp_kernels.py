"""Analytic NNGP/NTK against an independent NumPy float64 recursion, closed forms and
special cases (neural-tangents' conventions, REFERENCES.md)."""
import math

import numpy as np
import pytest
import torch

from petridish.errors import InvalidParameterError
from petridish.kernels import mlp_kernels


def _np_act(act, s11, s12, s22, slope=0.01):
    """Straightforward NumPy reference: returns (K, dot) for one pair of pre-activations."""
    if act == "linear":
        return s12, np.ones_like(s12)
    if act == "erf":
        den = np.sqrt((1 + 2 * s11) * (1 + 2 * s22))
        return (2 / np.pi) * np.arcsin(2 * s12 / den), (4 / np.pi) / np.sqrt(den ** 2 - 4 * s12 ** 2)
    a, b = (0.0, 1.0) if act == "relu" else (slope, 1.0)
    cos = np.clip(s12 / np.sqrt(s11 * s22), -1.0, 1.0)
    th = np.arccos(cos)
    k = (b - a) ** 2 / (2 * np.pi) * np.sqrt(s11 * s22) * (np.sin(th) + (np.pi - th) * cos) + a * b * s12
    dot = (a * a + b * b) * (np.pi - th) / (2 * np.pi) + a * b * th / np.pi
    return k, dot


def _np_reference(x1, x2, depth, act, w, b, param="ntk", width=None):
    x1 = np.asarray(x1, float); x2 = np.asarray(x2, float)
    d0 = x1.shape[1]
    k12 = x1 @ x2.T / d0
    k11 = (x1 * x1).sum(1)[:, None] / d0
    k22 = (x2 * x2).sum(1)[None, :] / d0
    th = np.zeros_like(k12)
    bb = 0.0 if b is None else b * b
    for layer in range(depth + 1):
        fan = d0 if layer == 0 else width
        if param == "standard":
            th_new = fan * k12 + w * w * th + (1.0 if b is not None else 0.0)
        s12, s11, s22 = w * w * k12 + bb, w * w * k11 + bb, w * w * k22 + bb
        if param == "ntk":
            th_new = s12 + w * w * th
        th = th_new
        if layer == depth:
            return s12, th
        k12, dot = _np_act(act, s11, s12, s22)
        k11, _ = _np_act(act, s11, s11, s11)
        k22, _ = _np_act(act, s22, s22, s22)
        th = th * dot


def _data(n=9, m=6, d=5, seed=0):
    g = np.random.default_rng(seed)
    return g.normal(size=(n, d)), g.normal(size=(m, d))


@pytest.mark.parametrize("act", ["relu", "erf", "leaky_relu", "linear"])
@pytest.mark.parametrize("param,b", [("ntk", 0.3), ("ntk", None), ("standard", 0.0), ("standard", None)])
def test_matches_numpy_reference(act, param, b):
    x1, x2 = _data()
    got = mlp_kernels(x1, x2, depth=3, activation=act, w_std=1.4, b_std=b,
                      parameterization=param, width=64, tile=4)
    ref_nngp, ref_ntk = _np_reference(x1, x2, 3, act, 1.4, b, param, 64)
    np.testing.assert_allclose(got.nngp.numpy(), ref_nngp, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(got.ntk.numpy(), ref_ntk, rtol=1e-10, atol=1e-13)


def test_symmetric_is_symmetric_psd_and_matches_cross():
    x1, _ = _data(n=40, d=7)
    sym = mlp_kernels(x1, depth=2, b_std=0.1, tile=8)
    cross = mlp_kernels(x1, x1, depth=2, b_std=0.1, tile=8)
    for a, c in zip(sym, cross):
        assert torch.equal(a, a.T)
        assert torch.linalg.eigvalsh(a).min() > -1e-12 * a.diagonal().max()
        np.testing.assert_allclose(a.numpy(), c.numpy(), rtol=1e-7)   # off-diagonal identical; diagonal up to sqrt(eps)
    ref_nngp, ref_ntk = _np_reference(x1, x1, 2, "relu", 1.0, 0.1)
    np.testing.assert_allclose(sym.ntk.numpy(), ref_ntk, rtol=1e-7)


def test_depth_zero_is_linear():
    x1, x2 = _data()
    k = mlp_kernels(x1, x2, depth=0, w_std=1.7, b_std=0.4)
    lin = 1.7 ** 2 * x1 @ x2.T / x1.shape[1] + 0.4 ** 2
    np.testing.assert_allclose(k.nngp.numpy(), lin, rtol=1e-12)
    np.testing.assert_allclose(k.ntk.numpy(), lin, rtol=1e-12)           # a linear model's NTK is its NNGP


@pytest.mark.parametrize("depth", [1, 3, 5])
def test_relu_diagonal_closed_form(depth):
    x1, _ = _data(d=11)
    w = 1.3
    k = mlp_kernels(x1, depth=depth, w_std=w, b_std=None)
    expected = w ** (2 * (depth + 1)) * (x1 ** 2).sum(1) / (11 * 2 ** depth)
    np.testing.assert_allclose(k.nngp.diagonal().numpy(), expected, rtol=1e-12)
    # ReLU NTK diagonal with b=0, w=sqrt(2): Theta_L = (L+1) * 2 * |x|^2 / d0 * ... (each layer adds Sigma = |x|^2 / d0 * 2)
    k2 = mlp_kernels(x1, depth=depth, w_std=math.sqrt(2.0), b_std=None)
    np.testing.assert_allclose(k2.ntk.diagonal().numpy(), (depth + 1) * 2 * (x1 ** 2).sum(1) / 11, rtol=1e-12)


def test_erf_closed_form_one_layer():
    x1, x2 = _data()
    k = mlp_kernels(x1, x2, depth=1, activation="erf", w_std=1.0, b_std=None)
    s12 = x1 @ x2.T / 5; s11 = (x1 ** 2).sum(1)[:, None] / 5; s22 = (x2 ** 2).sum(1)[None] / 5
    expected = 2 / np.pi * np.arcsin(2 * s12 / np.sqrt((1 + 2 * s11) * (1 + 2 * s22)))
    np.testing.assert_allclose(k.nngp.numpy(), expected, rtol=1e-12)


def test_large_symmetric_tiles_agree():
    x1, _ = _data(n=300, d=10)
    a = mlp_kernels(x1, depth=2, b_std=0.2, tile=64, threads=2)
    b = mlp_kernels(x1, depth=2, b_std=0.2, tile=1000, threads=1)
    assert torch.equal(a.nngp, b.nngp) and torch.equal(a.ntk, b.ntk)


def test_standard_needs_width_one_line_error():
    with pytest.raises(InvalidParameterError, match=r"^The 'width' parameter of mlp_kernels must be .*Got None\.$"):
        mlp_kernels(np.ones((2, 3)), depth=1, parameterization="standard")
    with pytest.raises(InvalidParameterError, match="activation"):
        mlp_kernels(np.ones((2, 3)), depth=1, activation="tanh")
    with pytest.raises(InvalidParameterError, match="depth"):
        mlp_kernels(np.ones((2, 3)), depth=-1)
