"""Per-example losses of a task's metric, and how a mean loss is displayed.

accuracy: loss = 0/1 error of the argmax, displayed as accuracy = 1 - mean loss (higher is better);
cross-entropy: loss = logsumexp(logits) - logit[y] (outputs are logits; the sandbox hands
    probability outputs over as log-probabilities, for which this is -log p[y]), displayed as is;
mse: loss = mean over outputs of (prediction - target)^2, displayed as is.
"""
from __future__ import annotations

import numpy as np

METRICS = ("accuracy", "cross-entropy", "mse")


def per_example_loss(metric: str, outputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """outputs (n, k) float; labels (n,) int for classification, (n,) or (n, k) float for mse -> (n,) float64."""
    out = np.asarray(outputs, dtype=np.float64)
    if metric == "accuracy":
        return (out.argmax(axis=1) != labels).astype(np.float64)
    if metric == "cross-entropy":
        m = out.max(axis=1, keepdims=True)
        lse = (m + np.log(np.exp(out - m).sum(axis=1, keepdims=True)))[:, 0]
        return lse - out[np.arange(len(labels)), labels]
    if metric == "mse":
        y = np.asarray(labels, dtype=np.float64).reshape(len(out), -1)
        return ((out - y) ** 2).mean(axis=1)
    raise ValueError(metric)


def display(metric: str, loss: float) -> float:
    """The number people see for a mean loss."""
    return 1.0 - loss if metric == "accuracy" else loss


def display_name(metric: str) -> str:
    return {"accuracy": "accuracy", "cross-entropy": "cross-entropy", "mse": "mean squared error"}[metric]


def higher_is_better(metric: str) -> bool:
    return metric == "accuracy"
