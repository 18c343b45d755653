"""``load(name, **kwargs)``: every dataset by its CLI name."""
from __future__ import annotations

from typing import Any, Callable

from petridish.data.dataset import Dataset
from petridish.data.digits import digits
from petridish.data.gaussian_linear import gaussian_linear
from petridish.data.gaussian_mixture import gaussian_mixture
from petridish.data.matrix_completion import matrix_completion
from petridish.data.mnist1d import mnist1d
from petridish.data.teacher_student import teacher_student
from petridish.errors import check_choice

LOADERS: dict[str, Callable[..., Dataset]] = {
    "mnist1d": mnist1d,
    "digits": digits,
    "gaussian-linear": gaussian_linear,
    "teacher-student": teacher_student,
    "gaussian-mixture": gaussian_mixture,
    "matrix-completion": matrix_completion,
}


def load(name: str, **kwargs: Any) -> Dataset:
    """Load a dataset by name with the loader's keyword arguments."""
    check_choice(name, "name", "load", tuple(LOADERS))
    return LOADERS[name](**kwargs)
