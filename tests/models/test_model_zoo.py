"""Model zoo: shapes on MNIST-1D-shaped input, seeding, the frozen random features."""
import pytest
import torch

from petridish.errors import InvalidParameterError
from petridish.models import (CNN1D, MLP, AttentionClassifier, GRUClassifier, Linear, RandomFeatures,
                              build_model)

NAMES = ["linear", "random-features", "mlp", "cnn", "gru", "attention"]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", NAMES)
def test_forward_shape_and_seeded_init(name):
    x = torch.randn(5, 40)
    a = build_model(name, d_in=40, d_out=10, seed=3)
    b = build_model(name, d_in=40, d_out=10, seed=3)
    c = build_model(name, d_in=40, d_out=10, seed=4)
    assert a(x).shape == (5, 10)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)


def test_build_model_leaves_the_global_rng_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    build_model("mlp", d_in=40, d_out=10, seed=1)
    assert torch.equal(torch.rand(3), expected)


def test_random_features_first_layer_is_fixed_and_gets_no_gradient():
    m = RandomFeatures(40, 64, 10, seed=2)
    assert [n for n, _ in m.named_parameters()] == ["readout.weight", "readout.bias"]
    assert "features" in dict(m.named_buffers())
    m(torch.randn(8, 40)).pow(2).sum().backward()
    assert not m.features.requires_grad and m.features.grad is None
    assert m.readout.weight.grad is not None
    assert torch.equal(RandomFeatures(40, 64, 10, seed=2).features, m.features)


def test_paper_architectures_have_the_paper_sizes():
    cnn = CNN1D(d_in=40, channels=25, d_out=10)
    assert cnn.linear.in_features == 125               # 25 channels x 5 positions
    gru = GRUClassifier(d_in=40, hidden=6, d_out=10)
    assert gru.linear.in_features == 40 * 6 * 2        # bidirectional, all steps flattened
    mlp = MLP(40, 100, 2, 10)
    assert [tuple(l.weight.shape) for l in mlp.layers] == [(100, 40), (100, 100), (10, 100)]
    assert Linear(40, 10)(torch.randn(2, 40)).shape == (2, 10)
    assert AttentionClassifier(d_in=40, d_model=16, heads=4, d_out=3)(torch.randn(2, 40)).shape == (2, 3)


def test_mlp_matches_a_hand_written_forward_and_init_scale_scales_weights_only():
    torch.manual_seed(0)
    m = MLP(4, 3, 2, 2, activation="tanh")
    torch.manual_seed(0)
    s = MLP(4, 3, 2, 2, activation="tanh", init_scale=2.5)
    for l1, l2 in zip(m.layers, s.layers):
        torch.testing.assert_close(l2.weight, 2.5 * l1.weight)
        torch.testing.assert_close(l2.bias, l1.bias)
    x = torch.randn(6, 4)
    h = x
    for i, l in enumerate(m.layers):
        h = h @ l.weight.T + l.bias
        h = torch.tanh(h) if i < 2 else h
    torch.testing.assert_close(m(x), h)


def test_bad_arguments_give_one_line_errors():
    with pytest.raises(InvalidParameterError, match="The 'name' parameter of build_model must be one of"):
        build_model("resnet", d_in=40, d_out=10, seed=0)
    with pytest.raises(InvalidParameterError, match="The 'activation' parameter of MLP must be one of"):
        MLP(40, 8, 1, 10, activation="swish")
    with pytest.raises(InvalidParameterError, match="The 'heads' parameter of AttentionClassifier"):
        AttentionClassifier(d_model=10, heads=3)
