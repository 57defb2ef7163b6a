"""Autoencoder (PyTorch, the ``tocsin[deep]`` extra): rows it cannot reconstruct are anomalous."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch  # at module top on purpose: without PyTorch this module is skipped by discovery

from tocsin.detectors._torch_training import check_training_params, scale_rows, train_mse
from tocsin.detectors.base import Capabilities, Detector, check_positive
from tocsin.detectors.knn import _column_scaling

#: Scaled inputs are clipped to this many robust standard deviations, so one
#: extreme training row cannot dominate the loss (it still scores high).


def _mlp(n_features: int, hidden: list[int], latent: int) -> torch.nn.Sequential:
    sizes = [n_features, *hidden, latent, *reversed(hidden), n_features]
    layers: list[torch.nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers).to(torch.float32)


def _module_to_numpy(module: torch.nn.Module) -> dict[str, np.ndarray]:
    return {f"net.{k}": v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def _numpy_to_module(module: torch.nn.Module, state: dict[str, np.ndarray]) -> None:
    tensors = {k[len("net.") :]: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items() if k.startswith("net.")}
    module.load_state_dict(tensors)


class Autoencoder(Detector):
    """A small fully connected autoencoder; the score is the row's mean squared reconstruction error.

    ``fit`` scales every column robustly (median and 1.4826 x MAD, clipped to
    +-10), then trains an MLP ``d -> hidden -> latent -> hidden -> d`` (ReLU)
    with Adam on the mean squared error for ``epochs`` passes in shuffled
    mini-batches, on CPU. The bottleneck forces the network to learn the
    relations that hold in most rows; a row that breaks them is reconstructed
    badly. Training is deterministic for a given ``random_state`` (weights and
    shuffling use their own generator; PyTorch's global RNG is left alone).
    ``partial_fit`` runs one more epoch on new rows with the same scaling
    (fine-tuning, not online learning: the result depends on how rows are
    batched).
    ``explain`` gives each column's squared error.

    **Good at**: anomalies that break non-linear relations between many
    columns (a sensor pattern no normal state produces), dozens to hundreds of
    features, and cheap batched scoring once trained.

    **Fails at**: small data (under a few thousand rows it memorises the
    outliers too), anomalies common enough to be learned, and explaining *why*
    beyond the column that was reconstructed badly. Scores depend on training
    length and width; calibrate them.

    **Cost**: training is O(epochs x rows x weights), seconds to a couple of
    minutes on CPU for tens of thousands of rows; scoring is one forward pass,
    O(weights) per row.

    Parameters
    ----------
    hidden
        Widths of the hidden layers of the encoder (mirrored in the decoder).
    latent
        Width of the bottleneck; ``None`` is ``max(1, d // 2)`` capped at 8.
    epochs
        Passes over the training rows.
    batch_size
        Rows per gradient step.
    learning_rate
        Adam's step size.
    random_state
        Seed of initialisation and shuffling (an int; None is 0).

    Examples
    --------
    >>> import numpy as np
    >>> from tocsin.detectors.autoencoder import Autoencoder
    >>> rng = np.random.default_rng(0)
    >>> t = rng.normal(size=(2000, 1))
    >>> X = np.hstack([t, 2 * t, -t]) + rng.normal(scale=0.05, size=(2000, 3))  # one hidden factor
    >>> detector = Autoencoder(hidden=[8], latent=1, epochs=20, random_state=0).fit(X)
    >>> scores = detector.score_samples([[1.0, 2.0, -1.0], [1.0, -2.0, -1.0]])  # the second breaks the relation
    >>> bool(scores[1] > 20 * scores[0])
    True
    >>> int(detector.explain([[1.0, -2.0, -1.0]]).argmax())
    1

    References
    ----------
    Sakurada, M. and Yairi, T. (2014). "Anomaly detection using autoencoders
    with nonlinear dimensionality reduction". *MLSDA workshop*. Aggarwal, C. C.
    (2017). *Outlier Analysis*, 2nd ed., section 3.5.
    """

    kind = "autoencoder"
    capabilities = Capabilities(explains=True)

    def __init__(
        self,
        hidden: list[int] | None = None,
        latent: int | None = None,
        epochs: int = 30,
        batch_size: int = 128,
        learning_rate: float = 3e-3,
        random_state: int | None = None,
    ) -> None:
        self.hidden = hidden
        self.latent = latent
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.random_state = random_state

    def check_params(self, feature_names: Sequence[str] | None = None) -> None:
        if self.hidden is not None:
            if not isinstance(self.hidden, (list, tuple)):
                raise ValueError(f"hidden must be a list of layer widths (positive ints) or None, got {self.hidden!r}")
            for width in self.hidden:
                check_positive("hidden", width, integer=True)
        check_positive("latent", self.latent, integer=True, optional=True)
        check_training_params(self)

    def _architecture(self, n_features: int) -> tuple[list[int], int]:
        hidden = [max(4, 2 * n_features)] if self.hidden is None else [int(h) for h in self.hidden]
        latent = min(8, max(1, n_features // 2)) if self.latent is None else int(self.latent)
        return hidden, latent

    def _new_module(self, n_features: int) -> torch.nn.Sequential:
        hidden, latent = self._architecture(n_features)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self._seed())
            return _mlp(n_features, hidden, latent)

    def _seed(self) -> int:
        return 0 if self.random_state is None else int(self.random_state)

    def fit(self, X: np.ndarray) -> Autoencoder:
        self.check_params()
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
            raise ValueError(f"X must be 2-D with at least one row and one feature, got shape {X.shape}")
        self.center_, self.scale_ = _column_scaling(X, "robust")
        self._net = self._new_module(X.shape[1])
        self._optimizer = None
        self._generator = torch.Generator().manual_seed(self._seed())
        self._train(self._scaled(X), self.epochs)
        self.weights_ = _module_to_numpy(self._net)
        return self

    def partial_fit(self, X: np.ndarray) -> Autoencoder:
        """One more epoch on ``X`` with the fitted scaling (fits on an unfitted detector)."""
        if not self.is_fitted:
            return self.fit(X)
        if getattr(self, "_generator", None) is None:
            self._generator = torch.Generator().manual_seed(self._seed())
        self._train(self._scaled(X), 1)
        self.weights_ = _module_to_numpy(self._net)
        return self

    def _train(self, Z: torch.Tensor, epochs: int) -> None:
        if getattr(self, "_optimizer", None) is None:
            self._optimizer = torch.optim.Adam(self._net.parameters(), lr=self.learning_rate)
        train_mse(self._net, self._optimizer, self._generator, Z, Z, epochs, self.batch_size)

    def _scaled(self, X: np.ndarray) -> torch.Tensor:
        return scale_rows(X, self.center_, self.scale_)

    def _squared_errors(self, X: np.ndarray) -> np.ndarray:
        self._check_fitted()
        Z = self._scaled(X)
        with torch.no_grad():
            return ((self._net(Z) - Z) ** 2).numpy().astype(np.float64)

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """Mean squared reconstruction error over the scaled columns."""
        return self._squared_errors(X).mean(axis=1)

    def explain(self, X: np.ndarray) -> np.ndarray:
        """Each column's squared reconstruction error."""
        return self._squared_errors(X)

    def state_dict(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        return {"center": self.center_.copy(), "scale": self.scale_.copy(), **_module_to_numpy(self._net)}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        center = np.asarray(state["center"], dtype=np.float64)
        scale = np.asarray(state["scale"], dtype=np.float64)
        if center.ndim != 1 or scale.shape != center.shape:
            raise ValueError("autoencoder state is corrupt: center and scale must be one per feature")
        net = self._new_module(center.shape[0])
        _numpy_to_module(net, state)
        net.eval()
        self.center_, self.scale_, self._net = center.copy(), scale.copy(), net
        self._optimizer, self._generator = None, None
        self.weights_ = _module_to_numpy(net)
