"""The one container every loader returns: plain tensors plus a metadata record."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor


@dataclass
class Dataset:
    """Train/test tensors and a metadata dict.

    Shapes: features float32 (n, d) (matrix completion: int64 (n, 2) indices);
    classification labels int64 (n,); regression targets float32 (n,) or (n, k).
    ``meta`` holds at least name, n_train, n_test, dim, classes (0 = regression) and
    params (the generation arguments). ``corrupted`` is a bool (n_train,) mask of the
    training labels that ``label_noise`` actually changed. ``groups_train``/``groups_test``
    are optional int64 (n_train,)/(n_test,) group ids (e.g. ``petridish.data.groups``), for
    subgroup metrics; None when the data set has no group column.
    """

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    meta: dict[str, Any] = field(default_factory=dict)
    corrupted: Tensor | None = None
    groups_train: Tensor | None = None
    groups_test: Tensor | None = None

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.x_test.shape[0])

    @property
    def classes(self) -> int:
        return int(self.meta.get("classes", 0))

    def with_(self, **changes: Any) -> "Dataset":
        """A copy with some fields replaced; ``meta`` is deep-copied so copies never alias."""
        meta = copy.deepcopy(changes.pop("meta", self.meta))
        return replace(self, meta=meta, **changes)


def make_meta(name: str, *, x_train: Tensor, x_test: Tensor, classes: int,
              params: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """Standard metadata record for a freshly generated dataset."""
    dim = int(x_train.shape[1]) if x_train.dim() > 1 else 1
    return {"name": name, "n_train": int(x_train.shape[0]), "n_test": int(x_test.shape[0]),
            "dim": dim, "classes": int(classes), "params": dict(params), **extra}


def as_float(x) -> Tensor:
    return torch.as_tensor(x).to(torch.float32).contiguous()


def as_long(x) -> Tensor:
    return torch.as_tensor(x).to(torch.int64).contiguous()
