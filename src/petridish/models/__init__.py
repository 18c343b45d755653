"""Models: plain nn.Modules mapping (batch, d_in) float inputs to (batch, d_out)."""
from petridish.models.attention import AttentionClassifier
from petridish.models.cnn import CNN1D
from petridish.models.gru import GRUClassifier
from petridish.models.linear import Linear
from petridish.models.mlp import MLP
from petridish.models.random_features import RandomFeatures
from petridish.models.registry import BUILDERS, build_model
from petridish.models.residual import ResidualCNN1D, ResidualMLP

__all__ = ["Linear", "RandomFeatures", "MLP", "CNN1D", "GRUClassifier", "AttentionClassifier",
           "ResidualMLP", "ResidualCNN1D", "build_model", "BUILDERS"]
