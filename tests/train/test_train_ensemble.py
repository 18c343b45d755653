"""``train_ensemble`` must reproduce solo ``train`` member by member, on every engine."""
import pytest
import torch

import petridish.data as D
from petridish.errors import InvalidParameterError
from petridish.models import build_model
from petridish.train import scale_weights, train, train_ensemble

from float_tolerance import assert_member_matches_solo, rel as _rel

DS = D.gaussian_mixture(n_train=400, n_test=300, dim=40, classes=10, separation=3.0, seed=0)
NOISY = [D.label_noise(DS, 0.2, seed=s).y_train for s in range(3)]

pytestmark = pytest.mark.usefixtures("one_thread")


def _assert_matches_solo(ens, fn, ks, ys, lrs, wds, scales, *, x=DS.x_train, **common):
    """Each member ``k`` in ``ks`` against solo ``train`` from the same initialization; the
    tolerance is derived from this CPU's float32 rounding (see ``float_tolerance.py``)."""
    for k in ks:
        model = scale_weights(fn(ens.seeds[k]), scales[k])
        if x.dtype == torch.float64:
            model = model.double()
        assert_member_matches_solo(ens, k, model, x, ys[k], lr=lrs[k], weight_decay=wds[k], seed=ens.seeds[k],
                                   **common)


def test_fast_mlp_path_matches_solo_training_after_200_steps():
    fn = lambda s: build_model("mlp", d_in=40, d_out=10, seed=s, width=24, depth=2)
    lrs, wds, scales = [0.05, 0.02, 0.1], [0.0, 1e-3, 5e-4], [1.0, 0.5, 1.5]
    common = dict(optimizer="sgd", momentum=0.9, batch_size=64, steps=200, loss="ce")
    ens = train_ensemble(fn, DS.x_train, torch.stack(NOISY), seeds=[0, 1, 2], lr=lrs, weight_decay=wds,
                         init_scale=scales, **common, eval_sets={"test": (DS.x_test, DS.y_test)}, eval_every=50)
    assert ens.path == "fast" and ens.loss_history.shape == (3, 200) and ens.steps.tolist() == [200] * 3
    _assert_matches_solo(ens, fn, range(3), NOISY, lrs, wds, scales, **common)
    acc = ens.eval_history["test"]["accuracy"]
    assert acc.shape == (3, 4) and ens.eval_steps == [50, 100, 150, 200]
    member = ens.member(1)
    with torch.no_grad():
        direct = (member(DS.x_test).argmax(1) == DS.y_test).double().mean()
    assert abs(float(acc[1, -1]) - float(direct)) < 1e-12
    assert ens.n_params == sum(q.numel() for q in member.parameters())
    final = ens.final_metrics(1)
    assert set(final) == {"test_error", "test_loss"} and abs(final["test_error"] - (1 - float(direct))) < 1e-12


@pytest.mark.parametrize("loss,optimizer,momentum", [("ce", "sgd", 0.9), ("mse", "adam", 0.0)])
def test_fast_path_in_float64_matches_solo_to_rounding(loss, optimizer, momentum):
    """Exactness of the fast path (stacked weights, zero-padded layers, hand-written backward):
    in float64 nothing is left to blame on rounding."""
    fn = lambda s: build_model("mlp", d_in=40, d_out=10, seed=s, width=21, depth=2).double()
    lrs, wds, scales = [0.05, 0.02, 0.1], [0.0, 1e-3, 5e-4], [1.0, 0.5, 1.5]
    if optimizer == "adam":
        lrs = [1e-3, 3e-3, 1e-2]
    common = dict(optimizer=optimizer, momentum=momentum, batch_size=64, steps=200, loss=loss)
    x = DS.x_train.double()
    ens = train_ensemble(fn, x, torch.stack(NOISY), seeds=[0, 1, 2], lr=lrs, weight_decay=wds,
                         init_scale=scales, **common)
    assert ens.path == "fast" and ens.params["layers.1.weight"].shape == (3, 21, 21)
    assert ens.params["layers.2.weight"].dtype == torch.float64
    _assert_matches_solo(ens, fn, range(3), NOISY, lrs, wds, scales, x=x, **common)


@pytest.mark.parametrize("loss,batch_size", [("ce", 64), ("mse", None)])
def test_fast_path_with_one_layer_matches_solo_in_float64(loss, batch_size):
    """depth 0 (a linear model): the output layer is the first, and (full batch) its input the shared data."""
    fn = lambda s: build_model("mlp", d_in=40, d_out=10, seed=s, width=8, depth=0).double()
    common = dict(optimizer="sgd", momentum=0.9, batch_size=batch_size, steps=60, loss=loss)
    x = DS.x_train.double()
    ens = train_ensemble(fn, x, torch.stack(NOISY[:2]), seeds=[0, 1], lr=[0.05, 0.02], **common)
    assert ens.path == "fast" and ens.params["layers.0.weight"].shape == (2, 10, 40)
    _assert_matches_solo(ens, fn, range(2), NOISY[:2], [0.05, 0.02], [0, 0], [1, 1], x=x, **common)


def test_fast_path_adam_and_mse_match_solo():
    fn = lambda s: build_model("mlp", d_in=40, d_out=10, seed=s, width=16, depth=1, activation="tanh")
    common = dict(optimizer="adam", batch_size=100, steps=120, loss="mse")
    ens = train_ensemble(fn, DS.x_train, DS.y_train, seeds=[5, 6], lr=[1e-3, 3e-3], **common)
    assert ens.path == "fast"
    _assert_matches_solo(ens, fn, range(2), [DS.y_train] * 2, [1e-3, 3e-3], [0, 0], [1, 1], **common)


def test_generic_vmap_path_matches_solo_training_after_200_steps():
    fn = lambda s: build_model("random-features", d_in=40, d_out=10, seed=s, n_features=48)
    lrs = [0.1, 0.05]
    common = dict(optimizer="sgd", momentum=0.5, batch_size=80, steps=200, loss="ce")
    ens = train_ensemble(fn, DS.x_train, DS.y_train, seeds=[3, 4], lr=lrs, weight_decay=1e-3, **common)
    assert ens.path == "vmap"
    assert torch.equal(ens.buffers["features"][1], fn(4).features)      # each member its own features
    _assert_matches_solo(ens, fn, range(2), [DS.y_train] * 2, lrs, [1e-3] * 2, [1, 1], **common)


def test_fast_and_vmap_engines_agree_on_the_same_mlps():
    """In float64, so that the two engines' different rounding cannot hide a real difference."""
    fn = lambda s: build_model("mlp", d_in=40, d_out=10, seed=s, width=20, depth=2).double()
    common = dict(seeds=[0, 1], lr=0.05, momentum=0.9, batch_size=64, steps=60)
    fast = train_ensemble(fn, DS.x_train.double(), DS.y_train, path="fast", **common)
    ref = train_ensemble(fn, DS.x_train.double(), DS.y_train, path="vmap", **common)
    for name in ref.params:
        assert _rel(fast.params[name], ref.params[name]) < 1e-10


@pytest.mark.parametrize("name,kw,loss", [("mlp", {"width": 24, "depth": 2}, "ce"),
                                          ("random-features", {"n_features": 48}, "mse")])
def test_a_diverging_member_is_flagged_and_leaves_the_others_untouched(name, kw, loss):
    """In float64: the healthy members must equal solo training to rounding, which float32
    cannot show on every CPU (200 momentum steps amplify rounding chaotically)."""
    fn = lambda s: build_model(name, d_in=40, d_out=10, seed=s, **kw).double()
    lrs = [0.05, 1e12, 0.02]       # lr 1e12 overflows float64 to inf/NaN within a few steps
    common = dict(optimizer="sgd", momentum=0.9, batch_size=64, steps=200, loss=loss)
    ens = train_ensemble(fn, DS.x_train.double(), DS.y_train, seeds=[0, 1, 2], lr=lrs,
                         eval_sets={"test": (DS.x_test.double(), DS.y_test)}, eval_every=100, **common)
    assert ens.diverged.tolist() == [False, True, False]
    assert int(ens.steps[1]) < 200 and ens.steps[[0, 2]].tolist() == [200, 200]
    assert torch.isnan(ens.loss_history[1, -1]) and torch.isfinite(ens.loss_history[[0, 2]]).all()
    assert torch.isfinite(ens.eval_history["test"]["accuracy"][[0, 2]]).all()
    _assert_matches_solo(ens, fn, [0, 2], [DS.y_train] * 3, lrs, [0] * 3, [1] * 3, x=DS.x_train.double(), **common)


def test_target_loss_freezes_members_at_their_own_step():
    lrs = [0.5, 0.1, 0.005]
    ens = train_ensemble("mlp", DS.x_train, DS.y_train, seeds=[0, 1, 2], lr=lrs, optimizer="gd", steps=150,
                         target_loss=1.0, model_kwargs={"width": 32, "depth": 1})
    assert ens.reached_target.tolist()[:2] == [True, True] and not bool(ens.reached_target[2])
    for k in range(3):
        solo = train(build_model("mlp", d_in=40, d_out=10, seed=k, width=32, depth=1), DS.x_train, DS.y_train,
                     lr=lrs[k], optimizer="gd", steps=150, target_loss=1.0)
        assert solo.steps == int(ens.steps[k])
        assert (solo.steps_to_target or -1) == int(ens.steps_to_target[k])


def test_epochs_and_bad_arguments():
    ens = train_ensemble("linear", DS.x_train, DS.y_train, seeds=[0], lr=0.1, batch_size=150, epochs=2)
    assert ens.loss_history.shape == (1, 6)            # ceil(400/150) = 3 steps per epoch
    with pytest.raises(InvalidParameterError, match="The 'lr' parameter of train_ensemble must be a float or a sequence of 2"):
        train_ensemble("linear", DS.x_train, DS.y_train, seeds=[0, 1], lr=[0.1], steps=1)
    with pytest.raises(InvalidParameterError, match="The 'y' parameter of train_ensemble must be a tensor of shape"):
        train_ensemble("linear", DS.x_train, DS.y_train[:10], seeds=[0, 1], lr=0.1, steps=1)
    with pytest.raises(InvalidParameterError, match="The 'path' parameter of train_ensemble must be 'fast' only"):
        train_ensemble("cnn", DS.x_train, DS.y_train, seeds=[0], lr=0.1, steps=1, path="fast")
