"""A supervised re-ranker beside the unsupervised score, once people and late truth have said enough.

Unsupervised detection has a ceiling on fraud: what looks ordinary stays invisible. Labels lift it. The
ranker keeps the last ``memory`` scored events' detector features and raw score; labels (a backtest's
delayed ones, a label topic's, people's verdicts) mark them positive; an event older than
``label_window`` with no positive label counts as a negative (its chargeback window has passed). Once
``min_positives`` positives are known it fits scikit-learn's ``HistGradientBoostingClassifier`` on
[features, raw score], and again every ``refit_every`` new positives.

Why gradient-boosted trees: tabular features of mixed scales and interactions (a merchant's confirmed
share matters at night, not by itself), monotone-free, fast to fit on ~10^5 rows (about a second here),
and robust without tuning; a logistic regression cannot express the interactions, a neural network needs
far more labels than a fraud team produces in a week.

The final score blends both and stays calibrated: ``b = (1 - w) logit(u) + w logit(p)`` for the calibrated
unsupervised score ``u`` and the model's probability ``p``, then ``b`` goes through its own
:class:`~tocsin.detectors.calibration.ScoreCalibrator` (seeded at each fit with the blend of the remembered
events), so the final score is again "the share of recent events scoring lower" and thresholds and
severities keep their meaning. Until the first fit the unsupervised score stands alone.

Where it fails: the features a label needs must be in the remembered window (labels older than
``memory`` events find nothing to mark); verdicts exist only for flagged events, so with people's
verdicts alone the model learns what was alerted. The remembered rows are not checkpointed (after a
restart the ranker keeps its fitted model and remembers events from then on). Cost: one
``predict_proba`` per scoring segment (~1 µs/event), a fit of ~1 s per ``refit_every`` positives.

Both run on one OpenMP thread: the pipeline already keeps the cores busy, and scikit-learn's default
(a thread per core, spinning while it waits) made a fit of 80,000 rows take 3.8 s instead of 0.63 s, and
predicting 1,000 rows 42 ms instead of 3–4 ms, with one other process busy on this 2-core machine; a
backtest beside another one took over 30 minutes instead of 1–2.
"""

from __future__ import annotations

import io
import json
import logging
import pickle
from typing import Any

import numpy as np

from tocsin.detectors.calibration import ScoreCalibrator

log = logging.getLogger(__name__)

_EPS = 1e-6


def _logit(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, _EPS, 1.0 - _EPS)
    return np.log(x) - np.log1p(-x)


class SupervisedRanker:
    """Remembers scored events, learns from their labels, and blends its probability into the score.

    >>> import numpy as np
    >>> from tocsin.spec.detection import SupervisedSpec
    >>> ranker = SupervisedRanker(SupervisedSpec(enabled=True, min_positives=5, refit_every=5, label_window=10.0), window=1_000)
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(400, 2)); bad = X[:, 0] > 1.5          # what only labels reveal
    >>> ranker.observe(np.arange(400).astype(str), np.arange(400.0), X, np.zeros(400))
    >>> ranker.label(np.flatnonzero(bad).astype(str), np.ones(int(bad.sum()), dtype=int))  # all remembered
    20
    >>> ranker.fit_if_due(now=500.0, unsupervised=lambda raw: np.full(len(raw), 0.5))
    True
    >>> p = ranker.probability(np.array([[2.5, 0.0], [-1.0, 0.0]]), np.zeros(2))
    >>> bool(p[0] > 0.5 > p[1])
    True
    """

    def __init__(self, spec: Any, window: int = 50_000, tail_quantile: float = 0.98) -> None:
        self.spec = spec
        self.memory = int(spec.memory)
        self.model: Any = None
        self.fits = 0
        self.positives_at_fit = 0
        self.window, self.tail_quantile = window, tail_quantile
        self.calibrator: ScoreCalibrator | None = None
        self._ids = np.empty(0, dtype=object)
        self._times = np.empty(0)
        self._X: np.ndarray | None = None
        self._positive = np.zeros(0, dtype=bool)
        self._slot: dict[str, int] = {}
        self._next = 0
        self._filled = 0
        #: confirmed positives among the remembered events (falls as they are forgotten)
        self.positives = 0
        #: confirmed positives ever marked (only grows): what ``refit_every`` counts
        self.confirmed_total = 0

    # --- remembering and labels ---------------------------------------------------

    def observe(self, ids: np.ndarray, times: np.ndarray, X: np.ndarray, raw: np.ndarray) -> None:
        """Remember scored events (features and raw score), the oldest forgotten past ``memory``."""
        rows = np.column_stack([X, raw]).astype(np.float32)
        if self._X is None:
            self._X = np.zeros((self.memory, rows.shape[1]), dtype=np.float32)
            self._ids = np.empty(self.memory, dtype=object)
            self._times = np.full(self.memory, np.nan)
            self._positive = np.zeros(self.memory, dtype=bool)
        for start in range(0, len(rows), self.memory):
            part = slice(start, min(len(rows), start + self.memory))
            n = part.stop - part.start
            slots = (self._next + np.arange(n)) % self.memory
            for old in self._ids[slots]:
                if old is not None:
                    self._slot.pop(old, None)
            self.positives -= int(self._positive[slots].sum())
            self._X[slots] = rows[part]
            self._ids[slots] = np.asarray(ids[part], dtype=object)
            self._times[slots] = times[part]
            self._positive[slots] = False
            self._slot.update(zip((str(i) for i in ids[part]), slots.tolist()))
            self._next = int((self._next + n) % self.memory)
            self._filled = min(self.memory, self._filled + n)

    def label(self, ids: np.ndarray, labels: np.ndarray) -> int:
        """Mark remembered events by their labels (1: confirmed bad; 0: confirmed normal). Returns how
        many of them were remembered."""
        found = 0
        for event_id, label in zip(ids, labels):
            slot = self._slot.get(str(event_id))
            if slot is None:
                continue
            found += 1
            was = bool(self._positive[slot])
            self._positive[slot] = bool(label)
            self.positives += int(bool(label)) - int(was)
            self.confirmed_total += int(bool(label) and not was)
        return found

    # --- learning -------------------------------------------------------------------

    def fit_if_due(self, now: float, unsupervised: Any) -> bool:
        """Fit when enough positives are known and enough new ones arrived since the last fit; ``now`` is
        the stream's event-time clock, ``unsupervised(raw)`` the calibrated unsupervised score of raw
        scores (to seed the blend's calibrator). True when it fitted."""
        # refits count positives ever confirmed: the remembered ones plateau as old events are forgotten
        if self.positives < self.spec.min_positives or (self.model is not None and self.confirmed_total - self.positives_at_fit < self.spec.refit_every):
            return False
        filled = np.flatnonzero(~np.isnan(self._times))
        known = filled[self._positive[filled] | (self._times[filled] <= now - self.spec.label_window)]
        y = self._positive[known]
        if y.sum() < self.spec.min_positives or y.all():
            return False
        from sklearn.ensemble import HistGradientBoostingClassifier

        model = HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, early_stopping=False, random_state=0)
        with _one_thread():
            model.fit(self._X[known], y)
        self.model = model
        self.fits += 1
        self.positives_at_fit = self.confirmed_total
        recent = self._X[filled]
        with _one_thread():
            probability = model.predict_proba(recent)[:, 1]
        blend = self._blend(unsupervised(recent[:, -1].astype(np.float64)), probability)
        self.calibrator = ScoreCalibrator(window=self.window, tail_quantile=self.tail_quantile)
        self.calibrator.update(blend)
        log.info("supervised ranker fitted on %d events (%d positive)", len(known), int(y.sum()))
        return True

    @property
    def is_fitted(self) -> bool:
        return self.model is not None and self.calibrator is not None

    def probability(self, X: np.ndarray, raw: np.ndarray) -> np.ndarray:
        with _one_thread():
            return self.model.predict_proba(np.column_stack([X, raw]).astype(np.float32))[:, 1]

    def _blend(self, unsupervised: np.ndarray, probability: np.ndarray) -> np.ndarray:
        w = self.spec.weight
        return (1.0 - w) * _logit(unsupervised) + w * _logit(probability)

    def rescore(self, X: np.ndarray, raw: np.ndarray, unsupervised: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(final calibrated score, blended raw, probability) of a segment."""
        p = self.probability(X, raw)
        blend = self._blend(unsupervised, p)
        return self.calibrator.transform(blend), blend, p

    # --- state ------------------------------------------------------------------------

    def state_dict(self) -> dict[str, np.ndarray]:
        """The fitted model (pickled: checkpoints are tocsin's own files) and the blend's calibration;
        the remembered rows are left out (see the module docstring)."""
        state = {"meta": np.array(json.dumps({"fits": self.fits, "positives_at_fit": self.positives_at_fit}))}
        if self.is_fitted:
            buffer = io.BytesIO()
            pickle.dump(self.model, buffer, protocol=pickle.HIGHEST_PROTOCOL)
            state["model"] = np.frombuffer(buffer.getvalue(), dtype=np.uint8).copy()
            state.update({f"calibrator/{k}": v for k, v in self.calibrator.state_dict().items()})
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        meta = json.loads(str(state["meta"])) if "meta" in state else {}
        self.fits = int(meta.get("fits", 0))
        self.positives_at_fit = 0  # the remembered positives are gone: count afresh
        if "model" in state:
            self.model = pickle.loads(np.asarray(state["model"], dtype=np.uint8).tobytes())
            self.calibrator = ScoreCalibrator(window=self.window, tail_quantile=self.tail_quantile)
            self.calibrator.load_state_dict({k.removeprefix("calibrator/"): v for k, v in state.items() if k.startswith("calibrator/")})


_CONTROLLER: Any = None


def _one_thread() -> Any:
    """A context in which OpenMP (scikit-learn's trees) runs one thread; the controller is made once (it
    inspects the loaded libraries, which is slow), after the trees' module has loaded its OpenMP runtime: a
    controller made before would not know that runtime and limit nothing."""
    global _CONTROLLER
    if _CONTROLLER is None:
        import sklearn.ensemble  # noqa: F401  (loads the runtime the controller must see)
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="openmp")
