"""Teacher–student data: x ~ N(0, I), targets from a random ReLU MLP teacher."""
from __future__ import annotations

import math

import torch

from petridish.data.dataset import Dataset, make_meta
from petridish.errors import check_number, invalid

OWNER = "teacher_student"


def teacher_student(*, n_train: int, n_test: int, dim: int, teacher_width: int = 32,
                    teacher_depth: int = 1, noise_std: float = 0.0, classes: int = 0,
                    seed: int = 0) -> Dataset:
    """A random teacher f: R^dim -> R^k (k = classes, or 1 for regression).

    The teacher has ``teacher_depth`` ReLU hidden layers of ``teacher_width`` units with
    N(0, 2/fan_in) weights (He scaling, so activations stay O(1)) and a N(0, 1/fan_in)
    readout. Regression (classes=0): y = f(x) + N(0, noise_std²), float32 (n,).
    Classification: y = argmax(f(x) + N(0, noise_std²) logit noise), int64 (n,).
    The teacher's weights are in ``meta["teacher"]`` (list of (out, in) weight lists).
    """
    n_train = check_number(n_train, "n_train", OWNER, kind=int, low=1)
    n_test = check_number(n_test, "n_test", OWNER, kind=int, low=0)
    dim = check_number(dim, "dim", OWNER, kind=int, low=1)
    teacher_width = check_number(teacher_width, "teacher_width", OWNER, kind=int, low=1)
    teacher_depth = check_number(teacher_depth, "teacher_depth", OWNER, kind=int, low=0)
    noise_std = check_number(noise_std, "noise_std", OWNER, low=0)
    classes = check_number(classes, "classes", OWNER, kind=int, low=0)
    if classes == 1:
        raise invalid("classes", OWNER, "0 (regression) or an int >= 2", classes)
    seed = check_number(seed, "seed", OWNER, kind=int, low=0)
    g = torch.Generator().manual_seed(seed)
    sizes = [dim] + [teacher_width] * teacher_depth + [max(classes, 1)]
    weights = [torch.randn(o, i, generator=g, dtype=torch.float64) *
               math.sqrt((2.0 if l < teacher_depth else 1.0) / i)
               for l, (i, o) in enumerate(zip(sizes[:-1], sizes[1:]))]

    def teacher(x: torch.Tensor) -> torch.Tensor:
        h = x
        for w in weights[:-1]:
            h = torch.relu(h @ w.T)
        return h @ weights[-1].T                        # (n, k)

    def draw(n: int):
        x = torch.randn(n, dim, generator=g, dtype=torch.float64)
        f = teacher(x)
        f = f + noise_std * torch.randn(f.shape, generator=g, dtype=torch.float64)
        y = f.argmax(1) if classes else f[:, 0].float()
        return x.float(), y

    x_tr, y_tr = draw(n_train)
    x_te, y_te = draw(n_test)
    params = {"n_train": n_train, "n_test": n_test, "dim": dim, "teacher_width": teacher_width,
              "teacher_depth": teacher_depth, "noise_std": noise_std, "classes": classes, "seed": seed}
    meta = make_meta("teacher-student", x_train=x_tr, x_test=x_te, classes=classes, params=params,
                     teacher=[w.tolist() for w in weights])
    return Dataset(x_tr, y_tr, x_te, y_te, meta)
