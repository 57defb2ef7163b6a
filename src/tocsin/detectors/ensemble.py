"""Ensembles: several detectors' scores, each put on a common scale, combined into one."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np

from tocsin.detectors.base import Capabilities, Detector, check_random_state, param_path, registered_detectors

_COMBINES = ("mean", "max", "rank")
#: Quantiles of each member's training scores kept for ``combine="rank"``.
_N_QUANTILES = 1001

#: The default members, chosen by leave-one-dataset-out cross-validation on the
#: ADBench classical datasets among fixed candidates (``tocsin bench adbench --cv``,
#: ``docs/quality.md``): tails (ECOD, per-column extremes) and distance (kNN,
#: combinations of values) make different mistakes; adding Isolation Forest lowered
#: the cross-validated mean. Both keep a bounded random reference, so fitting and
#: scoring n rows is linear in n (1,000,000 x 50 in well under a minute).
DEFAULT_MEMBERS: list[dict[str, Any]] = [
    {"kind": "ecod", "params": {"max_samples": 65_536}},
    {"kind": "knn", "params": {"n_neighbors": 50, "scaling": "robust", "max_samples": 2_048}},
]


def _detector_classes() -> dict[str, type[Detector]]:
    return registered_detectors()


class Ensemble(Detector):
    """Mean, maximum or mean rank of its members' scores, each standardised against its own training scores.

    Every member is fitted on the same rows, then scores them; from those
    training scores the ensemble learns, per member, how to put a new score on
    a common scale:

    - ``combine="mean"`` / ``"max"``: a robust z-score of the *log* score,
      ``(log(s + eps) - median) / IQR`` over the training scores (``eps`` is
      1e-6 x the median, so a score of 0 stays finite). Raw scores of most
      detectors are skewed (distances, sums of surprises), and the log makes a
      member's tail comparable with the others' instead of letting the member
      with the heaviest tail decide. A member with a negative training score
      is standardised without the log. ``"mean"`` averages the z-scores (rows
      that several members find odd win), ``"max"`` takes the largest (any one
      member suffices).
    - ``combine="rank"``: each member's empirical CDF over its training scores
      (kept as 1,001 quantiles, interpolated), i.e. a calibrated value in
      [0, 1]; the ensemble score is their mean. Robust, but it flattens the
      tail: every score beyond the training maximum is 1.

    ``explain`` sums the members' explanations, each normalised to sum 1 per
    row and weighted by the member's positive standardised score (its
    calibrated value for ``"rank"``), so the member that found the row odd
    speaks loudest. ``partial_fit`` is offered when every member has it (it
    is not online in the sense of :class:`~tocsin.detectors.base.Capabilities`:
    the standardisation stays as fitted). Members get rows alone, so a member
    that needs timestamps or labels is refused.

    **Good at**: being good everywhere: members fail on different datasets, and
    the average of standardised scores is rarely far from the best member and
    often above it (the default reaches a mean AUCROC of 0.911 and AUCPR 0.567
    on the ADBench classical datasets in-sample; choosing among the 14 candidates
    of ``tocsin bench adbench --cv`` is worth 0.894 / 0.530 on a held-out dataset).

    **Fails at**: anomalies only one member can see are diluted by ``"mean"``
    (use ``"max"``); members that are all blind to the same thing stay blind;
    costs add up.

    **Cost**: the sum of the members' costs, plus O(members) per row.

    Parameters
    ----------
    members
        ``[{"kind": "isolation_forest", "params": {...}}, ...]``: registered
        detector kinds and their parameters; ``None`` is :data:`DEFAULT_MEMBERS`.
    combine
        ``"mean"``, ``"max"`` or ``"rank"``.
    random_state
        Given to every member that takes a ``random_state`` and was not given one.

    Examples
    --------
    >>> import numpy as np
    >>> from tocsin.detectors.ensemble import Ensemble
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(500, 3))
    >>> X[7] = [0.0, 0.0, 8.0]
    >>> detector = Ensemble(random_state=0).fit(X)
    >>> [type(member).__name__ for member in detector.members_]
    ['ECOD', 'KNN']
    >>> int(detector.score_samples(X).argmax()), int(detector.explain(X[[7]]).argmax())
    (7, 2)

    References
    ----------
    Aggarwal, C. C. and Sathe, S. (2017). *Outlier Ensembles*. Springer.
    Zhao, Y., Nasrullah, Z., Hryniewicki, M. K. and Li, Z. (2019). "LSCP:
    Locally selective combination in parallel outlier ensembles". *SDM*.
    """

    kind = "ensemble"
    capabilities = Capabilities(explains=True)

    def __init__(
        self,
        members: list[dict[str, Any]] | None = None,
        combine: str = "mean",
        random_state: int | None = None,
    ) -> None:
        self.members = members
        self.combine = combine
        self.random_state = random_state

    def _member_specs(self) -> list[dict[str, Any]]:
        specs = DEFAULT_MEMBERS if self.members is None else self.members
        if not isinstance(specs, (list, tuple)) or not specs:
            raise ValueError("members must be a non-empty list of {'kind': ..., 'params': {...}}")
        return [dict(spec) for spec in specs]

    def _build_members(self, feature_names: Sequence[str] | None = None) -> list[Detector]:
        classes = _detector_classes()
        built = []
        for position, spec in enumerate(self._member_specs()):
            if (
                not isinstance(spec, dict)
                or "kind" not in spec
                or set(spec) - {"kind", "params"}
                or not isinstance(spec.get("params") or {}, dict)
            ):
                raise ValueError(f"members[{position}] must be {{'kind': ..., 'params': {{...}}}}, got {spec!r}")
            if spec["kind"] not in classes:
                raise ValueError(f"members[{position}]: unknown detector kind {spec['kind']!r}; known: {sorted(classes)}")
            if spec["kind"] == self.kind:
                raise ValueError(f"members[{position}]: an ensemble cannot hold an ensemble")
            cls = classes[spec["kind"]]
            missing = cls.capabilities.missing_from_rows()
            if missing is not None:
                raise ValueError(f"members[{position}]: {spec['kind']!r} needs {missing}, which an ensemble does not pass")
            params = copy.deepcopy(spec.get("params") or {})
            if "random_state" in cls.param_names() and params.get("random_state") is None:
                params["random_state"] = self.random_state
            try:
                built.append(cls.from_params(params, feature_names))
            except ValueError as error:
                raise ValueError(param_path(f"members[{position}].params", error, [*cls.param_names(), *params])) from None
        return built

    def check_params(self, feature_names: Sequence[str] | None = None) -> None:
        if self.combine not in _COMBINES:
            raise ValueError(f"combine must be one of {_COMBINES}, got {self.combine!r}")
        check_random_state(self.random_state)
        self._build_members(feature_names)

    def fit(self, X: np.ndarray) -> Ensemble:
        self.check_params()
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] == 0:
            raise ValueError(f"X must be 2-D with at least one row, got shape {X.shape}")
        self._fit_scores(X)
        return self

    def _fit_scores(self, X: np.ndarray) -> np.ndarray:
        members = self._build_members()
        training_scores = np.stack([member.fit(X).score_samples(X) for member in members])
        self.members_ = members
        self._learn_scaling(training_scores)
        return training_scores

    def fit_score_samples(self, X: np.ndarray) -> np.ndarray:
        """``fit(X).score_samples(X)`` without scoring ``X`` twice: the members' training
        scores, which the scaling is learned from, are combined directly."""
        self.check_params()
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] == 0:
            raise ValueError(f"X must be 2-D with at least one row, got shape {X.shape}")
        return self._combine(self._standardise(self._fit_scores(X)))

    def partial_fit(self, X: np.ndarray) -> Ensemble:
        """Update every member online (all must have ``partial_fit``); the standardisation stays as fitted."""
        if not self.is_fitted:
            return self.fit(X)
        missing = [type(m).__name__ for m in self.members_ if not hasattr(m, "partial_fit")]
        if missing:
            raise TypeError(f"partial_fit needs every member to learn online; {missing} cannot")
        for member in self.members_:
            member.partial_fit(X)
        return self

    def _learn_scaling(self, training_scores: np.ndarray) -> None:
        n_members = training_scores.shape[0]
        self.log_scale_ = np.zeros(n_members, dtype=bool)
        self.eps_ = np.zeros(n_members)
        self.center_ = np.zeros(n_members)
        self.spread_ = np.ones(n_members)
        self.quantiles_ = np.zeros((n_members, _N_QUANTILES))
        levels = np.linspace(0.0, 1.0, _N_QUANTILES)
        for m, scores in enumerate(training_scores):
            scores = scores[np.isfinite(scores)]
            if scores.size == 0:
                continue
            self.quantiles_[m] = np.quantile(scores, levels)
            self.log_scale_[m] = scores.min() >= 0
            if self.log_scale_[m]:
                self.eps_[m] = 1e-6 * float(np.median(scores)) or 1e-12
            transformed = self._transform(m, scores)
            q25, median, q75 = np.percentile(transformed, [25, 50, 75])
            spread = q75 - q25
            if not spread > 0:
                spread = float(np.std(transformed)) or 1.0
            self.center_[m], self.spread_[m] = median, spread

    def _transform(self, m: int, scores: np.ndarray) -> np.ndarray:
        if self.log_scale_[m]:
            return np.log(np.maximum(scores, 0.0) + self.eps_[m])
        return scores

    def _standardised(self, X: np.ndarray) -> np.ndarray:
        """Members x rows of standardised (or, for ``rank``, calibrated) scores."""
        self._check_fitted()
        X = np.asarray(X, dtype=np.float64)
        return self._standardise(np.stack([member.score_samples(X) for member in self.members_]) if self.members_ else np.empty((0, X.shape[0])))

    def _standardise(self, raw_scores: np.ndarray) -> np.ndarray:
        """Members x rows of raw scores, standardised (calibrated for ``rank``)."""
        out = np.empty(raw_scores.shape)
        for m, raw in enumerate(raw_scores):
            if self.combine == "rank":
                quantiles = self.quantiles_[m]
                # Mid-rank CDF over the quantiles: ties (flat runs) get the middle of their range.
                low = np.searchsorted(quantiles, raw, side="left")
                high = np.searchsorted(quantiles, raw, side="right")
                out[m] = (low + high) / (2.0 * len(quantiles))
            else:
                out[m] = (self._transform(m, raw) - self.center_[m]) / self.spread_[m]
        return out

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """Mean (``"mean"``, ``"rank"``) or maximum (``"max"``) of the members' standardised scores."""
        return self._combine(self._standardised(X))

    def _combine(self, standardised: np.ndarray) -> np.ndarray:
        if self.combine == "max":
            return np.fmax.reduce(standardised, axis=0)
        return np.nanmean(standardised, axis=0) if standardised.size else np.zeros(standardised.shape[1])

    def explain(self, X: np.ndarray) -> np.ndarray:
        """Members' explanations, normalised per row and weighted by how odd each member found the row."""
        standardised = self._standardised(X)
        weights = np.clip(np.nan_to_num(standardised), 0.0, None)
        total = None
        for m, member in enumerate(self.members_):
            contribution = np.clip(np.nan_to_num(np.asarray(member.explain(X), dtype=np.float64)), 0.0, None)
            sums = contribution.sum(axis=1, keepdims=True)
            share = np.divide(contribution, sums, out=np.zeros_like(contribution), where=sums > 0)
            weighted = share * weights[m][:, None]
            total = weighted if total is None else total + weighted
        return total

    def state_dict(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        state = {
            "log_scale": self.log_scale_.copy(),
            "eps": self.eps_.copy(),
            "center": self.center_.copy(),
            "spread": self.spread_.copy(),
            "quantiles": self.quantiles_.copy(),
        }
        for m, member in enumerate(self.members_):
            for key, value in member.state_dict().items():
                state[f"member{m}.{key}"] = value
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        members = self._build_members()
        for m, member in enumerate(members):
            prefix = f"member{m}."
            member_state = {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}
            if not member_state:
                raise ValueError(f"ensemble state has no arrays for member {m} ({type(member).__name__})")
            member.load_state_dict(member_state)
        n = len(members)
        arrays = {name: np.asarray(state[name]) for name in ("log_scale", "eps", "center", "spread", "quantiles")}
        if any(arrays[name].shape[0] != n for name in arrays):
            raise ValueError(f"ensemble state does not match its {n} members")
        self.members_ = members
        self.log_scale_ = arrays["log_scale"].astype(bool)
        self.eps_ = arrays["eps"].astype(np.float64)
        self.center_ = arrays["center"].astype(np.float64)
        self.spread_ = arrays["spread"].astype(np.float64)
        self.quantiles_ = arrays["quantiles"].astype(np.float64)
