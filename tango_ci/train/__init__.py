"""Training of classification networks, with checkpoints, resume and early stopping."""

from tango_ci.train.trainer import TrainConfig, TrainResult, evaluate, train_model

__all__ = ["TrainConfig", "TrainResult", "evaluate", "train_model"]
