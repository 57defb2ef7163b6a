"""LSTM forecaster (PyTorch, the ``tocsin[deep]`` extra): rows far from their forecast are anomalous."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch  # at module top on purpose: without PyTorch this module is skipped by discovery

from tocsin.detectors._torch_training import check_training_params, scale_rows, train_mse
from tocsin.detectors.base import Capabilities, Detector, check_positive
from tocsin.detectors.knn import _column_scaling


class _Forecaster(torch.nn.Module):
    def __init__(self, n_features: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.lstm = torch.nn.LSTM(n_features, hidden, num_layers=layers, batch_first=True)
        self.head = torch.nn.Linear(hidden, n_features)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:  # (batch, lookback, d) -> (batch, d)
        output, _ = self.lstm(windows)
        return self.head(output[:, -1, :])


class LSTMForecaster(Detector):
    """An LSTM that forecasts each row from the ``lookback`` rows before it; the score is the forecast error.

    The rows of ``X`` are one sequence in time order (a metric per column,
    sampled regularly). ``fit`` scales every column robustly (median and
    1.4826 x MAD, clipped to +-10), then trains an LSTM plus a linear head to
    predict row ``t`` from rows ``t - lookback .. t - 1`` (mean squared error,
    Adam, CPU), and keeps the last ``lookback`` rows as the *context*.
    ``score_samples(X)`` treats ``X`` as the continuation of that context: row
    ``t`` of ``X`` is forecast from the context and the rows of ``X`` before it;
    the score is the mean squared error over the scaled columns. It does not
    move the context; ``partial_fit(X)`` trains one epoch on the continuation
    and then moves the context to the end of ``X`` (fine-tuning, not online
    learning: the result depends on how rows are batched). It needs no
    timestamps, but it reads the rows as one equally spaced sequence.
    Deterministic for a given
    ``random_state`` (PyTorch's global RNG is left alone). ``explain`` gives
    each column's squared error.

    **Good at**: anomalies in *time*: a value that is normal in level but
    wrong for the moment (a missed daily peak, a broken periodic pattern, a
    sudden change of slope), and several series whose joint dynamics matter.

    **Fails at**: irregular or event-timed data (it assumes equally spaced
    rows; use per-key features and a tabular detector instead), short series
    (it needs thousands of steps to learn), and slow drifts, which it follows.
    Scoring training rows is optimistic (it has seen them).

    **Cost**: training O(epochs x rows x lookback x hidden^2) on CPU: seconds
    to minutes for tens of thousands of rows; scoring one forward pass over a
    ``lookback`` window per row.

    Parameters
    ----------
    lookback
        Rows of history per forecast.
    hidden
        LSTM state width.
    layers
        Stacked LSTM layers.
    epochs
        Passes over the training windows.
    batch_size
        Windows per gradient step.
    learning_rate
        Adam's step size.
    random_state
        Seed of initialisation and shuffling (an int; None is 0).

    Examples
    --------
    >>> import numpy as np
    >>> from tocsin.detectors.lstm import LSTMForecaster
    >>> t = np.arange(1200)
    >>> X = np.sin(2 * np.pi * t / 24)[:, None]  # a clean daily cycle
    >>> detector = LSTMForecaster(lookback=24, hidden=16, epochs=15, random_state=0).fit(X)
    >>> future = np.sin(2 * np.pi * np.arange(1200, 1248) / 24)[:, None]
    >>> future[30] = 0.0  # a value normal in level, wrong for its time
    >>> int(detector.score_samples(future).argmax())
    30

    References
    ----------
    Malhotra, P., Vig, L., Shroff, G. and Agarwal, P. (2015). "Long short term
    memory networks for anomaly detection in time series". *ESANN*.
    Hundman, K. et al. (2018). "Detecting spacecraft anomalies using LSTMs and
    nonparametric dynamic thresholding". *KDD*.
    """

    kind = "lstm_forecaster"
    capabilities = Capabilities(explains=True)

    def __init__(
        self,
        lookback: int = 32,
        hidden: int = 32,
        layers: int = 1,
        epochs: int = 10,
        batch_size: int = 128,
        learning_rate: float = 3e-3,
        random_state: int | None = None,
    ) -> None:
        self.lookback = lookback
        self.hidden = hidden
        self.layers = layers
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.random_state = random_state

    def _seed(self) -> int:
        return 0 if self.random_state is None else int(self.random_state)

    def _new_module(self, n_features: int) -> _Forecaster:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self._seed())
            return _Forecaster(n_features, int(self.hidden), int(self.layers))

    def check_params(self, feature_names: Sequence[str] | None = None) -> None:
        for name in ("lookback", "hidden", "layers"):
            check_positive(name, getattr(self, name), integer=True)
        check_training_params(self)

    def fit(self, X: np.ndarray) -> LSTMForecaster:
        self.check_params()
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] == 0 or X.shape[0] <= self.lookback:
            raise ValueError(f"X must be 2-D with more than lookback={self.lookback} rows, got shape {X.shape}")
        self.center_, self.scale_ = _column_scaling(X, "robust")
        Z = self._scaled(X)
        self._net = self._new_module(X.shape[1])
        self._optimizer = None
        self._generator = torch.Generator().manual_seed(self._seed())
        self._train(Z, self.epochs)
        self.context_ = Z[-self.lookback :].numpy().astype(np.float64)
        return self

    def partial_fit(self, X: np.ndarray) -> LSTMForecaster:
        """One epoch on the context followed by ``X``; then the context moves to the end of ``X``."""
        if not self.is_fitted:
            return self.fit(X)
        if getattr(self, "_generator", None) is None:
            self._generator = torch.Generator().manual_seed(self._seed())
        sequence = torch.cat([torch.from_numpy(self.context_.astype(np.float32)), self._scaled(X)])
        self._train(sequence, 1)
        self.context_ = sequence[-self.lookback :].numpy().astype(np.float64)
        return self

    def _windows(self, sequence: torch.Tensor) -> torch.Tensor:
        """(n - lookback, lookback, d): the history of each row from index ``lookback`` on."""
        return sequence.unfold(0, self.lookback, 1)[:-1].transpose(1, 2)

    def _train(self, sequence: torch.Tensor, epochs: int) -> None:
        windows, targets = self._windows(sequence), sequence[self.lookback :]
        if getattr(self, "_optimizer", None) is None:
            self._optimizer = torch.optim.Adam(self._net.parameters(), lr=self.learning_rate)
        train_mse(self._net, self._optimizer, self._generator, windows, targets, epochs, self.batch_size)

    def _scaled(self, X: np.ndarray) -> torch.Tensor:
        return scale_rows(X, self.center_, self.scale_)

    def _squared_errors(self, X: np.ndarray) -> np.ndarray:
        self._check_fitted()
        Z = self._scaled(X)
        sequence = torch.cat([torch.from_numpy(self.context_.astype(np.float32)), Z])
        with torch.no_grad():
            forecasts = self._net(self._windows(sequence)) if Z.shape[0] else Z
        return ((forecasts - Z) ** 2).numpy().astype(np.float64)

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """Mean squared forecast error per row (``X`` continues the fitted context)."""
        return self._squared_errors(X).mean(axis=1)

    def explain(self, X: np.ndarray) -> np.ndarray:
        """Each column's squared forecast error."""
        return self._squared_errors(X)

    def state_dict(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        net = {f"net.{k}": v.detach().numpy().copy() for k, v in self._net.state_dict().items()}
        return {"center": self.center_.copy(), "scale": self.scale_.copy(), "context": self.context_.copy(), **net}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        center = np.asarray(state["center"], dtype=np.float64)
        scale = np.asarray(state["scale"], dtype=np.float64)
        context = np.asarray(state["context"], dtype=np.float64)
        if center.ndim != 1 or scale.shape != center.shape or context.shape != (self.lookback, center.shape[0]):
            raise ValueError("LSTM state is corrupt: center/scale one per feature, context lookback x features")
        net = self._new_module(center.shape[0])
        net.load_state_dict({k[4:]: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items() if k.startswith("net.")})
        net.eval()
        self.center_, self.scale_, self.context_, self._net = center.copy(), scale.copy(), context.copy(), net
        self._optimizer, self._generator = None, None
