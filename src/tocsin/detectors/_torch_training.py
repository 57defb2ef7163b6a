"""What the PyTorch detectors share: the check of their training parameters, scaling
rows into the network's range and the mini-batch mean-squared-error training loop
(autoencoder: target = input; LSTM forecaster: target = the next row)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tocsin.detectors.base import check_positive, check_random_state

#: scaled values are clipped to +-CLIP so one wild row cannot blow up a gradient step
CLIP = 10.0


def check_training_params(detector: Any) -> None:
    """The training parameters both detectors take: ``epochs``, ``batch_size``, ``learning_rate``, ``random_state``."""
    check_positive("epochs", detector.epochs, integer=True)
    check_positive("batch_size", detector.batch_size, integer=True)
    check_positive("learning_rate", detector.learning_rate)
    check_random_state(detector.random_state)


def scale_rows(X: np.ndarray, center: np.ndarray, scale: np.ndarray) -> torch.Tensor:
    """``(X - center) / scale``, NaN to 0, clipped to +-CLIP, as float32; checks the width."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != center.shape[0]:
        raise ValueError(f"X must be 2-D with {center.shape[0]} features, got shape {X.shape}")
    Z = np.clip(np.nan_to_num((X - center) / scale), -CLIP, CLIP)
    return torch.from_numpy(Z.astype(np.float32))


def train_mse(net: torch.nn.Module, optimizer: torch.optim.Optimizer, generator: torch.Generator,
              inputs: torch.Tensor, targets: torch.Tensor, epochs: int, batch_size: int) -> None:
    """``epochs`` passes of shuffled mini-batches minimising mean((net(input) - target)^2)."""
    net.train()
    n = inputs.shape[0]
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            index = order[start : start + batch_size]
            optimizer.zero_grad()
            loss = torch.mean((net(inputs[index]) - targets[index]) ** 2)
            loss.backward()
            optimizer.step()
    net.eval()
