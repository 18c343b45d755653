"""MNIST-1D loader: shapes, determinism, the on-disk cache and the paper's shuffle."""
import importlib

import numpy as np
import pytest
import torch

import petridish.data as D

mnist1d_module = importlib.import_module("petridish.data.mnist1d")
from petridish.errors import InvalidParameterError


def test_default_split_matches_the_paper_shapes_and_labels():
    ds = D.mnist1d()                                   # 4,000 / 1,000, seed 42
    assert ds.x_train.shape == (4000, 40) and ds.x_test.shape == (1000, 40)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    assert ds.meta["classes"] == 10 and ds.meta["dim"] == 40 and ds.meta["n_train"] == 4000
    counts = torch.bincount(torch.cat([ds.y_train, ds.y_test]), minlength=10)
    assert counts.tolist() == [500] * 10               # make_dataset draws num_samples/10 per class
    x = torch.cat([ds.x_train, ds.x_test]).double()
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 1e-3   # package standardizes


def test_same_arguments_same_arrays_and_seed_changes_them(tmp_path):
    a = D.mnist1d(n_train=150, n_test=50, seed=3, cache_dir=tmp_path)
    b = D.mnist1d(n_train=150, n_test=50, seed=3, cache_dir=tmp_path / "other")   # regenerated
    c = D.mnist1d(n_train=150, n_test=50, seed=4, cache_dir=tmp_path)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.x_train, c.x_train)


def test_cache_hit_returns_identical_arrays_without_generating(tmp_path, monkeypatch):
    first = D.mnist1d(n_train=200, n_test=100, seed=1, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("mnist1d-*.npz"))) == 1

    def boom(args):
        raise AssertionError("generator called on a cache hit")

    monkeypatch.setattr(mnist1d_module, "_generate", boom)
    again = D.mnist1d(n_train=200, n_test=100, seed=1, cache_dir=tmp_path)
    assert torch.equal(first.x_train, again.x_train) and torch.equal(first.y_train, again.y_train)
    assert torch.equal(first.x_test, again.x_test)
    with pytest.raises(AssertionError):                # other arguments -> another key -> generated
        D.mnist1d(n_train=200, n_test=100, seed=1, cache_dir=tmp_path, shear=0.5)


def test_shuffled_is_the_packages_fixed_permutation_of_the_unshuffled(tmp_path):
    from mnist1d.data import get_dataset_args, make_dataset

    plain = D.mnist1d(n_train=400, n_test=100, cache_dir=tmp_path)
    shuf = D.mnist1d(n_train=400, n_test=100, shuffle_seq=True, cache_dir=tmp_path)
    perm = shuf.meta["permutation"]
    assert sorted(perm) == list(range(40)) and perm != list(range(40))
    assert torch.equal(shuf.x_train, plain.x_train[:, perm]) and torch.equal(shuf.y_train, plain.y_train)
    assert torch.equal(shuf.x_test, plain.x_test[:, perm])
    # oracle: the package's own shuffled generation (what the paper's benchmark used)
    args = get_dataset_args()
    args.num_samples, args.train_split, args.shuffle_seq = 500, 0.8, True
    ref = make_dataset(args)
    np.testing.assert_allclose(shuf.x_train.numpy(), ref["x"], atol=1e-5)
    np.testing.assert_array_equal(shuf.y_test.numpy(), ref["y_test"])


def test_hardcoded_defaults_equal_the_packages():
    from mnist1d.data import get_dataset_args

    pkg = get_dataset_args(as_dict=True)
    pkg.pop("url")
    assert mnist1d_module.DEFAULT_ARGS == pkg


def test_knobs_and_bad_input(tmp_path):
    ds = D.mnist1d(n_train=100, n_test=100, corr_noise=0.0, iid_noise=0.0, cache_dir=tmp_path)
    assert ds.meta["params"]["corr_noise_scale"] == 0.0
    with pytest.raises(InvalidParameterError, match="The 'wiggle' parameter of mnist1d must be"):
        D.mnist1d(n_train=100, n_test=100, wiggle=1, cache_dir=tmp_path)
    with pytest.raises(InvalidParameterError, match="The 'n_train' parameter of mnist1d must be an int >= 1. Got 0."):
        D.mnist1d(n_train=0)
