"""Training: one model (``train``) or K models in one vectorized pass (``train_ensemble``)."""
from petridish.train.adversarial import Adversarial
from petridish.train.batches import batch_indices
from petridish.train.ensemble import scale_weights, train_ensemble
from petridish.train.evaluate import evaluate
from petridish.train.loop import train
from petridish.losses import loss_value
from petridish.train.results import EnsembleResult, TrainResult
from petridish.train.schedules import lr_multiplier

__all__ = ["train", "train_ensemble", "TrainResult", "EnsembleResult", "scale_weights", "evaluate",
           "loss_value", "lr_multiplier", "batch_indices", "Adversarial"]
