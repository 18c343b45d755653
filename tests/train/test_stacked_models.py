"""The "stacked" engine (grouped-conv CNN, batched GRU recurrence with a hand-written
backward) must reproduce solo ``train`` member by member, like the other engines."""
import pytest
import torch

import petridish.data as D
from petridish.errors import InvalidParameterError
from petridish.models import build_model
from petridish.train import train, train_ensemble
from petridish.train.stacked_models import GRUScan

from float_tolerance import assert_member_matches_solo

DS = D.gaussian_mixture(n_train=300, n_test=200, dim=24, classes=10, separation=3.0, seed=1)


pytestmark = pytest.mark.usefixtures("one_thread")


def _check_members(ens, fn, ks, lrs, **common):
    """Tolerance derived from this CPU's float32 rounding (see ``float_tolerance.py``)."""
    for k in ks:
        assert_member_matches_solo(ens, k, fn(ens.seeds[k]), DS.x_train, DS.y_train, lr=lrs[k], seed=ens.seeds[k],
                                   **common)


@pytest.mark.parametrize("name,kw", [("cnn", {"channels": 8}), ("gru", {"hidden": 4})])
def test_stacked_cnn_and_gru_match_solo_training_after_200_steps(name, kw):
    fn = lambda s: build_model(name, d_in=24, d_out=10, seed=s, **kw)
    lrs = [0.05, 0.02]
    common = dict(optimizer="sgd", momentum=0.9, batch_size=50, steps=200, loss="ce")
    ens = train_ensemble(fn, DS.x_train, DS.y_train, seeds=[0, 1], lr=lrs, eval_sets={"test": (DS.x_test, DS.y_test)},
                         **common)
    assert ens.path == "stacked" and ens.steps.tolist() == [200, 200]
    _check_members(ens, fn, range(2), lrs, **common)
    with torch.no_grad():                                   # the engine's forward is the member's forward
        direct = (ens.member(1)(DS.x_test).argmax(1) == DS.y_test).double().mean()
    assert abs(float(ens.eval_history["test"]["accuracy"][1, -1]) - float(direct)) < 1e-12


def test_gru_scan_backward_equals_autograd_through_nn_gru():
    torch.manual_seed(0)
    gru = torch.nn.GRU(1, 5, batch_first=True).double()
    x = torch.randn(7, 11, dtype=torch.float64)
    w_ih, w_hh, b_ih, b_hh = gru.weight_ih_l0, gru.weight_hh_l0, gru.bias_ih_l0, gru.bias_hh_l0
    gi = (x.T[:, None, :, None] * w_ih[:, 0] + b_ih).detach().requires_grad_(True)   # (T, 1, B, 3H)
    w = w_hh.T.unsqueeze(0).detach().requires_grad_(True)
    b = b_hh[None, None].detach().requires_grad_(True)
    out = GRUScan.apply(gi, w, b)                           # (T, 1, B, H)
    ref, _ = gru(x.unsqueeze(-1))                           # (B, T, H)
    torch.testing.assert_close(out[:, 0].transpose(0, 1), ref, rtol=1e-10, atol=1e-12)
    probe = torch.randn_like(ref)
    g_ours = torch.autograd.grad((out[:, 0].transpose(0, 1) * probe).sum(), (w, b, gi))
    g_ref = torch.autograd.grad((ref * probe).sum(), (w_hh, b_hh, b_ih))
    torch.testing.assert_close(g_ours[0][0], g_ref[0].T, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(g_ours[1][0, 0], g_ref[1], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(g_ours[2].sum(dim=(0, 1, 2)), g_ref[2], rtol=1e-9, atol=1e-12)   # ∂/∂b_ih


def test_a_diverging_stacked_member_leaves_the_others_untouched():
    fn = lambda s: build_model("cnn", d_in=24, d_out=10, seed=s, channels=8)
    lrs = [0.05, 1e8, 0.02]
    common = dict(optimizer="sgd", momentum=0.9, batch_size=50, steps=60, loss="ce")
    ens = train_ensemble(fn, DS.x_train, DS.y_train, seeds=[0, 1, 2], lr=lrs, **common)
    assert ens.diverged.tolist() == [False, True, False]
    _check_members(ens, fn, [0, 2], lrs, **common)


def test_stacked_path_refuses_other_models():
    with pytest.raises(InvalidParameterError, match="The 'path' parameter of train_ensemble must be 'stacked' only"):
        train_ensemble("mlp", DS.x_train, DS.y_train, seeds=[0], lr=0.1, steps=1, path="stacked")
