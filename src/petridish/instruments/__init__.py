"""Instruments that measure trained PyTorch models: norms and margins, Hessian, GGN and Fisher
spectra, loss surfaces and mode connectivity, sharpness/flatness (plain and magnitude-aware) and
its tracking along training, effective dimension, adversarial attacks (FGSM, PGD, DeepFool), membership inference
(loss threshold, shadow models, LiRA) and subgroup errors. All randomness is seeded; nothing mutates the
model."""
from petridish.instruments.attacks import (DeepFoolResult, NormDistribution, deepfool, deepfool_norms, fgsm, pgd,
                                           robust_accuracy, success_rate)
from petridish.instruments.curvature import (CurvatureOperator, CurvatureSpectrum, curvature_eigenvalues,
                                             curvature_operator)
from petridish.instruments.directions import (filter_normalize, filter_normalized_directions,
                                              hessian_directions)
from petridish.instruments.effective_dim import (effective_dimension, hessian_effective_dimension,
                                                 min_norm_dof, ridge_dof)
from petridish.instruments.hessian import (HVP, SpectralDensity, TraceEstimate, hessian_trace,
                                           hvp_operator, spectral_density, top_eigenvalues)
from petridish.instruments.lanczos import EigResult, eigsh, lanczos
from petridish.instruments.magnitude_flatness import (MagnitudeFlatness, magnitude_pac_bayes_sigma,
                                                     magnitude_sharpness, magnitude_sharpness_alpha)
from petridish.instruments.max_margin import NotSeparableError, max_margin_direction, normalized_margin
from petridish.instruments.estimate import Estimate
from petridish.instruments.membership import (AttackResult, attack_metrics, lira_attack, lira_scores,
                                              loss_threshold_attack, roc_auc, shadow_attack)
from petridish.instruments.subgroups import GroupError, SubgroupReport, subgroup_errors
from petridish.instruments.mode_connectivity import ModeCurve, bezier_curve, bezier_points
from petridish.instruments.neff_spectrum import NeffEstimate, neff_full_spectrum
from petridish.instruments.norms import (frobenius_norms, margin_normalized_complexity, margins,
                                         norm_measures, path_norm, spectral_complexity, spectral_norm,
                                         spectral_norms, weight_matrices)
from petridish.instruments.nuclear_norm import NuclearNormResult, min_nuclear_norm
from petridish.instruments.sharpness import epsilon_sharpness, noise_increase, pac_bayes_sigma
from petridish.instruments.sharpness_tracking import SharpnessTrace, SharpnessTracker, sharpness_trajectory
from petridish.instruments.surface import (Interpolation, Surface, barrier_height, interpolate, loss_at_points,
                                           loss_surface)

__all__ = [
    "fgsm", "pgd", "deepfool", "robust_accuracy", "success_rate", "deepfool_norms", "DeepFoolResult",
    "NormDistribution",
    "CurvatureOperator", "CurvatureSpectrum", "curvature_operator", "curvature_eigenvalues",
    "filter_normalize", "filter_normalized_directions", "hessian_directions",
    "Surface", "Interpolation", "loss_surface", "loss_at_points", "interpolate", "barrier_height",
    "ModeCurve", "bezier_curve", "bezier_points",
    "SharpnessTrace", "SharpnessTracker", "sharpness_trajectory",
    "MagnitudeFlatness", "magnitude_sharpness", "magnitude_sharpness_alpha", "magnitude_pac_bayes_sigma",
    "HVP", "SpectralDensity", "TraceEstimate", "EigResult",
    "hvp_operator", "top_eigenvalues", "hessian_trace", "spectral_density", "eigsh", "lanczos",
    "frobenius_norms", "spectral_norm", "spectral_norms", "path_norm", "margins", "spectral_complexity",
    "margin_normalized_complexity", "norm_measures", "weight_matrices",
    "epsilon_sharpness", "noise_increase", "pac_bayes_sigma",
    "effective_dimension", "hessian_effective_dimension", "ridge_dof", "min_norm_dof",
    "NeffEstimate", "neff_full_spectrum",
    "min_nuclear_norm", "NuclearNormResult", "max_margin_direction", "normalized_margin", "NotSeparableError",
    "Estimate", "AttackResult", "attack_metrics", "roc_auc", "loss_threshold_attack", "shadow_attack",
    "lira_scores", "lira_attack", "GroupError", "SubgroupReport", "subgroup_errors",
]
