"""Random-features arms: min-norm least squares (``rf``) and validation-tuned ridge (``ridge``).

Features φ(x) = ReLU(x Wᵀ/√40), W ~ N(0, 1) drawn from the seed's "features" stream (``RandomFeatures``), a
linear readout fit to one-hot targets in float64. ``rf`` takes the min-norm solution
(Belkin et al. 2019); ``ridge`` picks λ on a held-out split of the *noisy* training pool
from a log grid that includes 0, by validation error (Nakkiran et al. 2020: tuned ridge
removes the peak).
"""
from __future__ import annotations

import torch

from petridish.errors import invalid
from petridish.experiments.double_descent.lstsq_path import LeastSquaresPath
from petridish.experiments.double_descent.mnist1d_task import noisy_mnist1d, one_hot
from petridish.experiments.double_descent.sizes import rf_features
from petridish.models import RandomFeatures
from petridish.seeding import sub_seed

RIDGE_GRID = [0.0] + [10.0 ** e for e in range(-8, 2)]   # λ / mean Gram eigenvalue
CHUNK = 2000                                               # test rows per feature block (memory)


def _scores(model: RandomFeatures, coef: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(0-1 error, mean squared error per output) of the readout ``coef`` (p, 10) on (x, y)."""
    wrong, sq = 0.0, 0.0
    for i in range(0, x.shape[0], CHUNK):
        out = model.embed(x[i:i + CHUNK]).to(torch.float64) @ coef
        wrong += float((out.argmax(1) != y[i:i + CHUNK]).sum())
        sq += float(((out - one_hot(y[i:i + CHUNK])) ** 2).sum())
    return wrong / x.shape[0], sq / (x.shape[0] * coef.shape[1])


def run_rf(p: dict, seed: int, *, ridge: bool) -> dict:
    n = int(p["rf_n"])
    n_val = min(1000, max(0, p["n_train"] - n)) if ridge else 0
    if ridge and n_val < 50:
        raise invalid("n_train", "double-descent (ridge arm)", f"an int >= rf_n + 50 = {n + 50} "
                      "(the ridge arm validates on the training pool beyond rf_n)", p["n_train"])
    if p["n_train"] < n:
        raise invalid("rf_n", "double-descent", f"an int <= n_train = {p['n_train']}", n)
    x, y, x_test, y_test = noisy_mnist1d(n_train=p["n_train"], n_test=p["n_test"],
                                         noise=p["noise"], seed=seed)
    features = rf_features(p["width"])
    model = RandomFeatures(x.shape[1], features, 10, seed=sub_seed(seed, "features"))
    with torch.no_grad():
        path = LeastSquaresPath(model.embed(x[:n]), one_hot(y[:n]))
        lam_rel = 0.0
        if ridge:
            xv, yv = x[n:n + n_val], y[n:n + n_val]
            # 0-1 error first (the one-hot MSE is nearly flat in λ), then MSE, then the larger λ
            val = [(*_scores(model, path.coef(lam * path.scale()), xv, yv), -lam) for lam in RIDGE_GRID]
            lam_rel = -min(val)[2]
        coef = path.coef(lam_rel * path.scale())
        train_err, train_mse = _scores(model, coef, x[:n], y[:n])
        test_err, test_mse = _scores(model, coef, x_test, y_test)
    return {"test_error": test_err, "test_mse": test_mse, "train_error": train_err,
            "train_mse": train_mse, "size": features, "n_params": features * 10,
            "threshold": n, "coef_norm": float(coef.norm()), "ridge_lambda": lam_rel}
