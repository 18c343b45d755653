"""The search space derived from an experiment's declared parameters."""
from __future__ import annotations

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from petridish.errors import PetridishError
from petridish.experiments import get
from petridish.lab import Experiment, Param
from petridish.search import derive_space

EXP = Experiment(name="t", question="?", reference="?", run=lambda p, s: {}, params=(
    Param("lr", float, default=[0.01, 0.1], low=0.0, log=True),
    Param("width", int, default=[4, 64], low=1),
    Param("act", str, default=["relu", "tanh"], choices=("relu", "tanh", "gelu")),
    Param("flag", bool, default=[True, False]),
    Param("n", int, default=100, low=1)))


def test_space_from_declared_params():
    s = derive_space(EXP, EXP.config())
    d = s.distributions
    # lr: log scale, lower bound 0 is not usable on a log scale -> the smallest positive sweep value
    assert d["lr"] == FloatDistribution(0.01, 0.1, log=True)
    assert d["width"] == IntDistribution(4, 64)                     # no declared high: the sweep's range
    assert d["act"] == CategoricalDistribution(["relu", "tanh", "gelu"])   # declared choices, not the sweep
    assert d["flag"] == CategoricalDistribution([False, True])
    assert s.fixed == {"n": 100} and s.size() is None


def test_grid_uses_declared_sweep_lists_and_fixed_params_are_not_searched():
    cfg = EXP.config({"width": 8})
    s = derive_space(EXP, cfg, fixed_by_user={"width"}, sampler="grid")
    assert s.grid == {"lr": [0.01, 0.1], "act": ["relu", "tanh"], "flag": [True, False]}
    assert s.size() == 8 and s.fixed == {"width": 8, "n": 100}


def test_declared_bounds_used_when_both_given():
    exp = get("linear-double-descent")
    s = derive_space(exp, exp.config(quick=True))
    assert s.distributions["gamma"] == FloatDistribution(1e-3, 100.0)
    assert s.distributions["ridge"] == CategoricalDistribution(["none", "optimal"])


def test_space_errors_are_one_line():
    with pytest.raises(PetridishError, match="The parameters width of .t. are sweep axes but not searched"):
        derive_space(EXP, EXP.config(), names=["lr", "act", "flag"])
    with pytest.raises(PetridishError, match="Unknown parameter 'nope'"):
        derive_space(EXP, EXP.config(), names=["nope"])
    with pytest.raises(PetridishError, match="Nothing to search"):
        derive_space(EXP, EXP.config({"lr": 0.1, "width": 3, "act": "relu", "flag": True}),
                     fixed_by_user={"lr", "width", "act", "flag"})
