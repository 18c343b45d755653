"""Residual MLP/CNN (skip on/off is one architecture) and dropout in MLP, CNN1D and the residual nets."""
import pytest
import torch
from torch import nn

from petridish.errors import InvalidParameterError
from petridish.models import CNN1D, MLP, ResidualCNN1D, ResidualMLP, build_model
from petridish.train import train_ensemble
from petridish.train.fast_mlp import supports_fast
from petridish.train.stacked_models import supports_stacked

pytestmark = pytest.mark.usefixtures("one_thread")


def _pair(cls, **kw):
    torch.manual_seed(0)
    a = cls(skip=True, **kw).double()
    torch.manual_seed(0)
    b = cls(skip=False, **kw).double()
    return a, b


@pytest.mark.parametrize("name,kw", [("resmlp", {"width": 12, "blocks": 3}), ("rescnn", {"channels": 5})])
def test_shapes_seeding_and_skip_keeps_every_parameter(name, kw):
    x = torch.randn(7, 40)
    a = build_model(name, d_in=40, d_out=10, seed=1, **kw)
    b = build_model(name, d_in=40, d_out=10, seed=1, skip=False, **kw)
    assert a(x).shape == b(x).shape == (7, 10)
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)   # same net, same init
    assert not torch.allclose(a(x), b(x))                                        # ... minus the identities


def test_cnn_head_sees_channels_times_the_stem_length():
    m = ResidualCNN1D(d_in=40, channels=6, blocks=2, d_out=3)
    assert m.head.in_features == 6 * 19 and m(torch.randn(2, 40)).shape == (2, 3)
    assert sum(p.numel() for p in m.parameters()) == (6 * 5 + 6) + 2 * 2 * (6 * 6 * 3 + 6) + (6 * 19 * 3 + 3)


@pytest.mark.parametrize("cls,kw", [(ResidualMLP, dict(d_in=40, width=9, blocks=3, d_out=4, activation="tanh")),
                                    (ResidualCNN1D, dict(d_in=40, channels=4, blocks=2, d_out=4))])
def test_forward_is_stem_blocks_head_with_and_without_the_identity(cls, kw):
    # Oracle: the forward written out by hand from the modules' own layers, in float64.
    a, b = _pair(cls, **kw)
    x = torch.randn(6, 40, dtype=torch.float64)
    act = torch.tanh if cls is ResidualMLP else torch.relu
    h_skip = h_plain = a.stem(x if cls is ResidualMLP else x[:, None, :])
    for f1, f2 in a.branches:
        h_skip = h_skip + f2(act(f1(act(h_skip))))
        h_plain = f2(act(f1(act(h_plain))))
    torch.testing.assert_close(a(x), a.head(act(h_skip).flatten(1)), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(b(x), a.head(act(h_plain).flatten(1)), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cls,kw", [(ResidualMLP, dict(d_in=40, width=9, blocks=3, d_out=4)),
                                    (ResidualCNN1D, dict(d_in=40, channels=4, blocks=3, d_out=4))])
def test_zeroed_branches_make_the_skip_net_the_identity_through_its_blocks(cls, kw):
    a, b = _pair(cls, **kw)
    with torch.no_grad():
        for _, f2 in a.branches:
            f2.weight.zero_()
            f2.bias.zero_()
    b.load_state_dict(a.state_dict())
    x = torch.randn(5, 40, dtype=torch.float64)
    stem = a.stem(x if cls is ResidualMLP else x[:, None, :])
    # skip: every block passes h through unchanged, so the output is head(σ(stem(x))) exactly
    assert torch.equal(a(x), a.head(torch.relu(stem).flatten(1)))
    # no skip: the zeroed branches output 0, so the output is the head's bias for every input
    assert torch.equal(b(x), a.head.bias.expand(5, -1))


@pytest.mark.parametrize("make", [lambda p: MLP(40, 64, 2, 10, dropout=p), lambda p: CNN1D(dropout=p),
                                  lambda p: ResidualMLP(40, 64, 2, 10, dropout=p),
                                  lambda p: ResidualCNN1D(channels=8, dropout=p)])
def test_dropout_acts_in_train_mode_only_and_zero_is_the_old_forward(make):
    torch.manual_seed(0)
    m = make(0.5)
    torch.manual_seed(0)
    plain = make(0.0)
    x = torch.randn(32, 40)
    m.eval()
    assert torch.equal(m(x), plain(x))              # eval: dropout is the identity
    assert torch.equal(plain.train()(x), plain(x))  # p = 0: train mode changes nothing
    m.train()
    torch.manual_seed(1)
    y1 = m(x)
    torch.manual_seed(2)
    y2 = m(x)
    assert not torch.allclose(y1, y2)               # train: a fresh mask per call
    torch.manual_seed(1)
    assert torch.equal(m(x), y1)                    # ... drawn from the global RNG


def test_dropout_mlp_hidden_units_are_zeroed_at_rate_p_and_rescaled():
    m = MLP(4, 4000, 1, 1, activation="identity", dropout=0.3).train()
    with torch.no_grad():
        m.layers[0].weight.zero_()
        m.layers[0].bias.fill_(1.0)                   # every hidden unit is 1 before dropout
        m.layers[1].weight.fill_(1.0)
        m.layers[1].bias.zero_()
    torch.manual_seed(0)
    kept = float(m(torch.zeros(1, 4))) / (1 / 0.7)    # number of surviving units
    # Binomial(4000, 0.7): mean 2800, sd 29; 5 sd
    assert abs(kept - 2800) < 5 * (4000 * 0.3 * 0.7) ** 0.5


def test_dropout_models_leave_the_ensemble_fast_paths():
    assert supports_fast(MLP(40, 8, 1, 10)) and not supports_fast(MLP(40, 8, 1, 10, dropout=0.1))
    assert supports_stacked(CNN1D()) and not supports_stacked(CNN1D(dropout=0.1))
    x, y = torch.randn(20, 40), torch.randint(0, 3, (20,))
    res = train_ensemble("resmlp", x, y, seeds=[0, 1], lr=0.1, steps=3, model_kwargs={"width": 8})
    assert res.path == "vmap" and res.loss_history.shape == (2, 3)


def test_bad_arguments_give_one_line_errors():
    with pytest.raises(InvalidParameterError, match="The 'dropout' parameter of MLP must be a float >= 0 and < 1"):
        MLP(40, 8, 1, 10, dropout=1.0)
    with pytest.raises(InvalidParameterError, match="The 'dropout' parameter of CNN1D"):
        CNN1D(dropout=-0.1)
    with pytest.raises(InvalidParameterError, match="The 'skip' parameter of ResidualMLP must be a bool"):
        ResidualMLP(40, 8, 1, 10, skip="yes")
    with pytest.raises(InvalidParameterError, match="The 'blocks' parameter of ResidualCNN1D"):
        ResidualCNN1D(blocks=-1)
    assert isinstance(build_model("resmlp", d_in=40, d_out=10, seed=0), nn.Module)
