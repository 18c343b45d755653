"""Datasets as plain tensors: MNIST-1D, digits and synthetic families, plus transformations."""
from petridish.data.dataset import Dataset
from petridish.data.digits import digits
from petridish.data.gaussian_linear import gaussian_linear
from petridish.data.gaussian_mixture import gaussian_mixture
from petridish.data.groups import two_groups
from petridish.data.matrix_completion import matrix_completion
from petridish.data.mnist1d import mnist1d
from petridish.data.registry import LOADERS, load
from petridish.data.teacher_student import teacher_student
from petridish.data.transforms import gaussian_inputs, label_noise, shuffle_features, subsample

__all__ = ["Dataset", "LOADERS", "load", "mnist1d", "digits", "gaussian_linear", "teacher_student",
           "gaussian_mixture", "two_groups", "matrix_completion", "subsample", "label_noise",
           "shuffle_features", "gaussian_inputs"]
