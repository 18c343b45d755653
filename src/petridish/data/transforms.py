"""Transformations of a Dataset. Each returns a new Dataset; the input is never modified."""
from __future__ import annotations

import torch

from petridish.data.dataset import Dataset
from petridish.errors import check_number, invalid


def subsample(ds: Dataset, n: int, *, seed: int) -> Dataset:
    """``n`` training examples drawn without replacement (test set unchanged)."""
    n = check_number(n, "n", "subsample", kind=int, low=1, high=ds.n_train)
    seed = check_number(seed, "seed", "subsample", kind=int, low=0)
    g = torch.Generator().manual_seed(seed)
    keep = torch.randperm(ds.n_train, generator=g)[:n].sort().values
    meta = dict(ds.meta, n_train=n)
    meta.setdefault("transforms", [])
    meta["transforms"] = list(meta["transforms"]) + [{"subsample": n, "seed": seed}]
    corrupted = ds.corrupted[keep] if ds.corrupted is not None else None
    groups = ds.groups_train[keep] if ds.groups_train is not None else None
    return ds.with_(x_train=ds.x_train[keep], y_train=ds.y_train[keep], meta=meta, corrupted=corrupted,
                    groups_train=groups)


def label_noise(ds: Dataset, p: float, *, seed: int) -> Dataset:
    """Replace each training label, with probability ``p``, by a uniform random class.

    As in the MNIST-1D double-descent notebook the new class may equal the old one, so
    about p·(1 − 1/C) of the labels change; ``corrupted`` marks exactly those that did
    (combined with any earlier corruption). Test labels are untouched.
    """
    if ds.classes < 2:
        raise invalid("ds", "label_noise", "a classification dataset (meta['classes'] >= 2)", ds.meta.get("name"))
    p = check_number(p, "p", "label_noise", low=0, high=1)
    seed = check_number(seed, "seed", "label_noise", kind=int, low=0)
    g = torch.Generator().manual_seed(seed)
    hit = torch.rand(ds.n_train, generator=g) < p
    random_labels = torch.randint(ds.classes, (ds.n_train,), generator=g)
    y = torch.where(hit, random_labels, ds.y_train)
    changed = y != ds.y_train
    if ds.corrupted is not None:
        changed = changed | ds.corrupted
    meta = dict(ds.meta, label_noise=p)
    meta["transforms"] = list(meta.get("transforms", [])) + [{"label_noise": p, "seed": seed}]
    return ds.with_(y_train=y, meta=meta, corrupted=changed)


def shuffle_features(ds: Dataset, *, seed: int) -> Dataset:
    """One fixed permutation of the feature positions, applied to train and test.

    The permutation is in ``meta["feature_permutation"]``.
    """
    seed = check_number(seed, "seed", "shuffle_features", kind=int, low=0)
    if ds.x_train.dim() != 2 or ds.x_train.is_floating_point() is False:
        raise invalid("ds", "shuffle_features", "a dataset with float (n, d) features", ds.meta.get("name"))
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(ds.x_train.shape[1], generator=g)
    meta = dict(ds.meta, feature_permutation=perm.tolist())
    meta["transforms"] = list(meta.get("transforms", [])) + [{"shuffle_features": seed}]
    return ds.with_(x_train=ds.x_train[:, perm].contiguous(), x_test=ds.x_test[:, perm].contiguous(), meta=meta)


def gaussian_inputs(ds: Dataset, *, seed: int) -> Dataset:
    """Replace every input by Gaussian noise with the training set's per-feature mean and std.

    Labels are kept (Zhang et al. 2017, "Gaussian" inputs: a network can still fit them).
    """
    seed = check_number(seed, "seed", "gaussian_inputs", kind=int, low=0)
    if ds.x_train.dim() != 2 or not ds.x_train.is_floating_point():
        raise invalid("ds", "gaussian_inputs", "a dataset with float (n, d) features", ds.meta.get("name"))
    g = torch.Generator().manual_seed(seed)
    mean = ds.x_train.double().mean(0)
    std = ds.x_train.double().std(0) if ds.n_train > 1 else torch.ones_like(mean)
    draw = lambda n: (mean + std * torch.randn(n, mean.shape[0], generator=g, dtype=torch.float64)).float()
    meta = dict(ds.meta)
    meta["transforms"] = list(meta.get("transforms", [])) + [{"gaussian_inputs": seed}]
    return ds.with_(x_train=draw(ds.n_train), x_test=draw(ds.n_test), meta=meta)
