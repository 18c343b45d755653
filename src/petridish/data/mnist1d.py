"""MNIST-1D (Greydanus & Kobak, ICML 2024), generated locally and cached.

Uses ``mnist1d.data.make_dataset`` (never ``get_dataset``, which downloads).
"""
from __future__ import annotations

import math
import random
from typing import Any

import numpy as np

from petridish.data.cache import cached_arrays
from petridish.data.dataset import Dataset, as_float, as_long, make_meta
from petridish.errors import check_number, invalid

OWNER = "mnist1d"
DATA_SEED = 42      # the paper's generator seed: the catalogue's one fixed MNIST-1D draw (cells vary the rest)

# our keyword -> the mnist1d package's argument name
_ALIASES = {"corr_noise": "corr_noise_scale", "iid_noise": "iid_noise_scale",
            "shear": "shear_scale", "scale": "scale_coeff"}
_KNOBS = ("template_len", "padding", "max_translation", "corr_noise_scale",
          "iid_noise_scale", "shear_scale", "scale_coeff", "final_seq_length")


def mnist1d(*, n_train: int = 4000, n_test: int = 1000, seed: int = DATA_SEED, shuffle_seq: bool = False,
            cache_dir: str | None = None, **mnist1d_args: Any) -> Dataset:
    """The MNIST-1D dataset: x float32 (n, 40) standardized, y int64 in 0..9.

    With the defaults this is exactly the paper's 4,000/1,000 split (seed 42).
    ``num_samples = n_train + n_test`` (rounded up to a multiple of 10, the extra
    samples dropped) and the split is taken at ``n_train``. Knobs (``corr_noise``,
    ``iid_noise``, ``shear``, ``scale``, ``template_len``, ``padding``,
    ``max_translation``, or the package's own names) override the generator's defaults.
    ``shuffle_seq=True`` applies the package's fixed spatial permutation of the 40
    positions (the paper's "shuffled" benchmark) to train and test alike; the
    permutation is recorded in ``meta["permutation"]``.
    """
    n_train = check_number(n_train, "n_train", OWNER, kind=int, low=1)
    n_test = check_number(n_test, "n_test", OWNER, kind=int, low=0)
    seed = check_number(seed, "seed", OWNER, kind=int, low=0)
    if not isinstance(shuffle_seq, bool):
        raise invalid("shuffle_seq", OWNER, "a bool", shuffle_seq)
    args = _generator_args(n_train, n_test, seed, mnist1d_args)
    arrays = cached_arrays("mnist1d", args, lambda: _generate(args), cache_dir=cache_dir)
    x, y, perm = arrays["x"], arrays["y"], arrays["permutation"]
    if shuffle_seq:
        x = x[:, perm]
    x_tr, x_te = as_float(x[:n_train]), as_float(x[n_train:n_train + n_test])
    y_tr, y_te = as_long(y[:n_train]), as_long(y[n_train:n_train + n_test])
    params = {"n_train": n_train, "n_test": n_test, "seed": seed, "shuffle_seq": shuffle_seq,
              **{k: v for k, v in args.items() if k in _KNOBS}}
    meta = make_meta("mnist1d", x_train=x_tr, x_test=x_te, classes=10, params=params,
                     permutation=perm.tolist() if shuffle_seq else None)
    return Dataset(x_tr, y_tr, x_te, y_te, meta)


# ``mnist1d.data.get_dataset_args()`` without its download url (importing the package
# pulls in matplotlib, seconds on a busy machine, so cache hits must not need it;
# tests/data check that these equal the package's defaults).
DEFAULT_ARGS: dict[str, Any] = {
    "num_samples": 5000, "train_split": 0.8, "template_len": 12, "padding": [36, 60],
    "scale_coeff": 0.4, "max_translation": 48, "corr_noise_scale": 0.25, "iid_noise_scale": 0.02,
    "shear_scale": 0.75, "shuffle_seq": False, "final_seq_length": 40, "seed": 42,
}


def _generator_args(n_train: int, n_test: int, seed: int, overrides: dict[str, Any]) -> dict[str, Any]:
    args = {k: (list(v) if isinstance(v, list) else v) for k, v in DEFAULT_ARGS.items()}
    total = n_train + n_test
    num = int(math.ceil(total / 10) * 10)   # make_dataset draws num_samples // 10 per class
    args.update(num_samples=num, train_split=n_train / num, seed=seed, shuffle_seq=False)
    for key, value in overrides.items():
        name = _ALIASES.get(key, key)
        if name not in _KNOBS:
            allowed = ", ".join(sorted(set(_ALIASES) | set(_KNOBS)))
            raise invalid(key, OWNER, f"a known generator knob (one of {allowed})", value)
        args[name] = list(value) if isinstance(value, (list, tuple)) else value
    return args


def _generate(args: dict[str, Any]) -> dict[str, np.ndarray]:
    """Run the package's generator; restore the global RNG states it reseeds."""
    from mnist1d.data import make_dataset
    from mnist1d.utils import ObjectView

    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(ObjectView(dict(args)))
        # make_dataset draws its spatial permutation right after the batch shuffle,
        # from the same global stream: drawing it now gives exactly the package's
        # (and the paper's) shuffle for these arguments.
        perm = np.random.permutation(args["final_seq_length"])
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    x = np.concatenate([data["x"], data["x_test"]]).astype(np.float32)
    y = np.concatenate([data["y"], data["y_test"]]).astype(np.int64)
    return {"x": x, "y": y, "permutation": perm.astype(np.int64)}


def mnist1d_raw(*, n: int, seed: int, knobs: dict[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-1D before standardization: x float64 (n', 40), y int64 (n',), n' = n rounded up to a
    multiple of 10. For shifted test sets (``knobs``) that a caller scales with the training draw's
    statistics: ``mnist1d()`` standardizes each draw by its own, which would undo part of a shift.

    The loop of ``mnist1d.data.make_dataset`` (same global-RNG stream, same batch shuffle), minus
    its last line (``xs = (xs - xs.mean()) / xs.std()``). Cached on disk like ``mnist1d()``.
    """
    args = _generator_args(n, 0, seed, dict(knobs or {}))
    arrays = cached_arrays("mnist1d-raw", args, lambda: _generate_raw(args))
    return arrays["x"], arrays["y"]


def _generate_raw(args: dict[str, Any]) -> dict[str, np.ndarray]:
    from mnist1d.data import get_templates
    from mnist1d.transform import transform
    from mnist1d.utils import ObjectView

    a = ObjectView(dict(args))
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        random.seed(a.seed)
        np.random.seed(a.seed)
        t = get_templates()
        per_class = a.num_samples // len(t["y"])
        xs, ys = [], []
        for label in range(len(t["y"])):
            for _ in range(per_class):
                x, _ = transform(t["x"][label], t["t"], a)
                xs.append(x)
                ys.append(t["y"][label])
        order = np.random.permutation(len(ys))          # make_dataset's batch shuffle
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {"x": np.stack(xs)[order].astype(np.float64), "y": np.asarray(ys, dtype=np.int64)[order]}
