"""Infinite-width kernels: analytic NNGP/NTK of MLPs, GP and gradient-flow predictions,
and the empirical NTK of any torch module (torch.func)."""
from petridish.kernels.empirical import empirical_ntk
from petridish.kernels.mlp import Kernels, mlp_kernels
from petridish.kernels.ntk_mlp import NTKMLP
from petridish.kernels.predict import Prediction, nngp_predict, ntk_predict

__all__ = ["Kernels", "mlp_kernels", "Prediction", "nngp_predict", "ntk_predict",
           "empirical_ntk", "NTKMLP"]
