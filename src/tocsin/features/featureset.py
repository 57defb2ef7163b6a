"""The features of a pipeline: operators built from the spec, run over each batch into one matrix.

A :class:`FeatureSet` owns the key interners (entity keys, and each
categorical field used as a key or a novelty value) and the operators, in
spec order. ``transform_update(batch)`` interns the batch's keys once, runs
every operator over the batch (each computes its features from prior state,
then updates it, event by event in arrival order) and stacks the columns into
a :class:`FeatureFrame`. Output never depends on where the stream is cut into
batches, and ``state_dict``/``load_state_dict`` capture all state as flat
NumPy arrays, so a run resumed from a checkpoint continues exactly like an
uninterrupted one.

Numeric fields and times must be finite: one NaN would poison a key's state
for good, so such a batch is refused before any state changes (decoding and
validation send those events to dead letters).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tocsin.batch import EventBatch
from tocsin.features.base import BatchKeys, FeatureOperator, FeatureOutput
from tocsin.features.decayed import DecayedStats
from tocsin.features.keys import KeyIndex
from tocsin.features.labels import ConfirmedRisk
from tocsin.features.navigation import Navigation
from tocsin.features.novelty import Novelty
from tocsin.features.recency import Recency
from tocsin.features.series import SeriesModel
from tocsin.features.travel import Travel
from tocsin.features.value import ValueFeature
from tocsin.features.velocity import Velocity
from tocsin.features.windows import WindowCounter
from tocsin.spec import PipelineSpec
from tocsin.vocabulary import Words

ENTITY = "entity"
GLOBAL = "global"


@dataclass
class FeatureFrame:
    """Features of one batch: ``X`` (rows × ``names``, float64, C-contiguous, finite)
    and ``context`` columns that explain them (e.g. a key's usual mean and std)."""

    X: np.ndarray
    names: list[str]
    context: dict[str, np.ndarray]
    batch: EventBatch = field(repr=False)
    _owners: dict[str, tuple[FeatureOperator, FeatureOutput]] = field(repr=False, default_factory=dict)
    #: the interned id of each row's entity (what per-entity watchers downstream key by)
    entity_ids: np.ndarray | None = field(repr=False, default=None)

    def column(self, name: str) -> np.ndarray:
        """One feature column by name."""
        return self.X[:, self.names.index(name)]

    def describe(self, name: str, row: int) -> str:
        """A short sentence about feature ``name`` of event ``row``, e.g.
        ``"amount 4,200 vs this card's usual 40–180"``."""
        if name not in self._owners:
            raise KeyError(f"no feature {name!r}; features are {self.names}")
        operator, output = self._owners[name]
        return operator.describe(name, row, self.batch, output)


def _derives_from(operator: FeatureOperator, fields: frozenset[str] | set[str]) -> bool:
    return bool(fields) and any(getattr(operator, role, None) in fields for role in ("field", "lon_field", "by"))


def _subject(by: str, key_field: str) -> tuple[str, str]:
    """How sentences name the key: ("this card", "this card's") or ("all keys", "the")."""
    if by == GLOBAL:
        return "all keys", "the"
    noun = (key_field if by == ENTITY else by).removesuffix("_id")
    return f"this {noun}", f"this {noun}'s"


def _siblings(by: str, key_field: str) -> str:
    """How sentences name the other keys of a series' metric ("other hosts")."""
    return f"other {Words.of(key_field if by == ENTITY else by).entities}"


class FeatureSet:
    """Operators in order, their key interners, and the columns they make.

    >>> from tocsin.spec import parse_spec
    >>> spec = parse_spec({
    ...     "name": "t", "source": {"kind": "file", "path": "x.jsonl"},
    ...     "schema": {"key_field": "card_id", "numeric": ["amount"], "categorical": ["merchant_id"]},
    ...     "features": [{"kind": "window", "windows": ["1m"]}, {"kind": "novelty", "field": "merchant_id"}],
    ... })
    >>> features = FeatureSet.from_spec(spec)
    >>> features.names
    ['count_1m', 'merchant_id_novel', 'merchant_id_seen_count', 'merchant_id_distinct', 'merchant_id_share']
    >>> batch = EventBatch(
    ...     ids=np.array(["e1", "e2", "e3"], dtype=object),
    ...     keys=np.array(["c1", "c1", "c2"], dtype=object),
    ...     times=np.array([0.0, 10.0, 20.0]),
    ...     numeric={"amount": np.array([5.0, 6.0, 7.0])},
    ...     categorical={"merchant_id": np.array(["M1", "M1", "M1"], dtype=object)},
    ... )
    >>> frame = features.transform_update(batch)
    >>> frame.X.tolist()
    [[0.0, 1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 1.0, 1.0, 1.0], [0.0, 1.0, 0.0, 0.0, 0.0]]
    >>> frame.describe("merchant_id_novel", 2)
    'merchant_id M1 never seen before for this card'
    >>> features.entity_state("c1")
    {'count_1m': 2.0, 'merchant_id_distinct': 1.0}
    """

    def __init__(self, operators: list[FeatureOperator]) -> None:
        self.operators = list(operators)
        self.names = [name for op in self.operators for name in op.names]
        duplicates = sorted({name for name in self.names if self.names.count(name) > 1})
        if duplicates:
            raise ValueError(f"features {duplicates} are produced twice; remove the repeated feature specs")
        categorical: list[str] = []
        numeric: list[str] = []
        for op in self.operators:
            by = getattr(op, "by", None)
            if by not in (None, ENTITY, GLOBAL) and by not in categorical:
                categorical.append(by)
            metric_field = getattr(op, "metric_field", None)
            if metric_field is not None and metric_field not in categorical:
                categorical.append(metric_field)
            if isinstance(op, Novelty):
                if op.field not in categorical:
                    categorical.append(op.field)
            elif isinstance(op, Navigation):
                if op.categorical_field not in categorical:
                    categorical.append(op.categorical_field)
            elif getattr(op, "field", None) and op.field not in numeric:
                numeric.append(op.field)
            if getattr(op, "lon_field", None) and op.lon_field not in numeric:
                numeric.append(op.lon_field)
        self.categorical_fields = categorical
        self.numeric_fields = numeric
        self.interners = {ENTITY: KeyIndex(), **{name: KeyIndex() for name in categorical}}

    @classmethod
    def from_spec(cls, spec: PipelineSpec) -> FeatureSet:
        """The operators of ``spec.features``, in order."""
        key_field = spec.event_schema.key_field
        operators: list[FeatureOperator] = []
        for feature in spec.features:
            if feature.kind == "value":
                operators.append(ValueFeature(feature.field, log=feature.log))
                continue
            by = feature.by or ENTITY
            this, possessive = _subject(by, key_field)
            if feature.kind == "window":
                operators.append(WindowCounter(feature.windows, field=feature.field, by=by, this=this))
            elif feature.kind == "decayed_stats":
                operators.append(
                    DecayedStats(feature.field, feature.half_life, feature.outputs, by=by, this=this, possessive=possessive)
                )
            elif feature.kind == "recency":
                operators.append(Recency(feature.cap, by=by, this=this, possessive=possessive))
            elif feature.kind == "velocity":
                operators.append(Velocity(feature.half_life, by=by, this=this, baseline=feature.baseline))
            elif feature.kind == "novelty":
                operators.append(Novelty(feature.field, by=by, this=this))
            elif feature.kind == "series":
                operators.append(SeriesModel(
                    feature.field, by=by, metric_field=feature.metric_field, season=feature.season,
                    level_half_life=feature.level_half_life, spread_half_life=feature.spread_half_life,
                    season_memory=feature.season_memory, prior_weight=feature.prior_weight, clip_z=feature.clip_z,
                    shift_z=feature.shift_z, shift_after=feature.shift_after, min_rel_spread=feature.min_rel_spread, min_spread=feature.min_spread, slot=feature.slot,
                    sustained=feature.sustained, trend=feature.trend, stuck=feature.stuck, max_series=feature.max_series,
                    log_scale=feature.log_scale, seasonal=feature.seasonal, this=this, possessive=possessive, siblings=_siblings(by, key_field),
                ))  # fmt: skip
            elif feature.kind == "travel":
                operators.append(Travel(feature.lat_field, feature.lon_field, feature.min_seconds, by=by, this=this,
                                        possessive=possessive))
            elif feature.kind == "navigation":
                operators.append(Navigation(feature.page_field, feature.span, feature.max_gap, feature.rare_below, feature.min_known, by=by, this=this,
                                            possessive=possessive))
            elif feature.kind == "confirmed":
                operators.append(ConfirmedRisk(by=by, half_lives=feature.half_lives, this=this))
            else:  # pragma: no cover - the spec's discriminator admits no other kind
                raise ValueError(f"unknown feature kind {feature.kind!r}")
        return cls(operators)

    def _check_finite(self, batch: EventBatch) -> None:
        for name, column in (("time", batch.times), *((f, batch.numeric[f]) for f in self.numeric_fields)):
            finite = np.isfinite(column)
            if not finite.all():
                rows = np.flatnonzero(~finite)[:5].tolist()
                raise ValueError(
                    f"field {name!r} has NaN or infinite values (rows {rows}); "
                    "validation should have sent those events to dead letters"
                )

    def batch_keys(self, batch: EventBatch) -> BatchKeys:
        """Interned ids of the batch's keys and categorical values (new ones are added)."""
        # the key field declared as a category too is read from the keys when a source gives it only there (simulators)
        columns = {name: batch.categorical[name] if name in batch.categorical else batch.keys for name in self.categorical_fields}
        ids = {name: self.interners[name].ids(column, batch.encoding(column)) for name, column in columns.items()}
        by = {ENTITY: self.interners[ENTITY].ids(batch.keys, batch.encoding(batch.keys)), GLOBAL: np.zeros(len(batch), dtype=np.int64), **ids}
        return BatchKeys(by=by, values=ids)

    def transform_update(self, batch: EventBatch) -> FeatureFrame:
        """Features of every event from prior state, then the state updated with the batch."""
        self._check_finite(batch)
        keys = self.batch_keys(batch)
        X = np.empty((len(batch), len(self.names)), dtype=np.float64)
        context: dict[str, np.ndarray] = {}
        owners: dict[str, tuple[FeatureOperator, FeatureOutput]] = {}
        j = 0
        for op in self.operators:
            output = op.transform_update(batch, keys)
            for name in op.names:
                X[:, j] = output.columns[name]
                owners[name] = (op, output)
                j += 1
            context.update(output.context)
        return FeatureFrame(X=X, names=list(self.names), context=context, batch=batch, _owners=owners, entity_ids=keys.by[ENTITY])

    @property
    def takes_labels(self) -> bool:
        """Whether any operator turns arriving labels into features (``kind: confirmed``)."""
        return any(getattr(op, "accepts_labels", False) for op in self.operators)

    def apply_labels(self, labelled: EventBatch, at: np.ndarray) -> None:
        """Fold in labels (``labelled.labels``, 1 = confirmed bad) of the events in ``labelled``, which
        arrived at times ``at``. They change later events' features only: an event already scored keeps
        its score, which is what makes a backtest with delayed labels honest."""
        if labelled.labels is None or not len(labelled):
            return
        for op in self.operators:
            if not getattr(op, "accepts_labels", False):
                continue
            if op.by == ENTITY:
                key_ids = self.interners[ENTITY].ids(labelled.keys)
            elif op.by == GLOBAL:
                key_ids = np.zeros(len(labelled), dtype=np.int64)
            else:
                key_ids = self.interners[op.by].ids(labelled.categorical[op.by])
            op.apply_labels(key_ids, at, labelled.labels)

    def entity_state(self, key: str, without: frozenset[str] = frozenset()) -> dict[str, float]:
        """Current per-key state of entity ``key`` (as of its last event), {} if never seen; ``without``:
        fields whose derived state is left out (sensitive ones, for people who may not see them)."""
        key_id = self.interners[ENTITY].lookup(key)
        if key_id is None:
            return {}
        state: dict[str, float] = {}
        for op in self.operators:
            if getattr(op, "by", None) == ENTITY and not _derives_from(op, without):
                state.update(op.key_state(key_id))
        return state

    def growing_with_history(self) -> frozenset[str]:
        """The features whose distribution moves as entity histories lengthen, in a steady stream too."""
        return frozenset(name for op in self.operators if op.grows_with_history for name in op.names)

    def derived_from(self, fields: frozenset[str] | set[str]) -> frozenset[str]:
        """The features computed from any of ``fields`` (their values, or keyed by them): what reveals
        a sensitive field as much as the field itself (``amount_sum_1m`` is the amount of a lone event)."""
        return frozenset(name for op in self.operators if _derives_from(op, fields) for name in op.names)

    def state_dict(self) -> dict[str, np.ndarray]:
        """All interners and operator state as one flat dict of arrays (for ``np.savez``)."""
        state = {"meta/names": np.array(self.names, dtype=np.str_)}
        for name, interner in self.interners.items():
            state.update({f"keys/{name}/{k}": v for k, v in interner.state_dict().items()})
        for i, op in enumerate(self.operators):
            state.update({f"ops/{i}/{k}": v for k, v in op.state_dict().items()})
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore :meth:`state_dict` output; the feature set must be built from the same spec."""
        saved = [str(n) for n in np.asarray(state["meta/names"]).tolist()]
        if saved != self.names:
            raise ValueError(f"state was saved for features {saved}, not {self.names}")
        for name, interner in self.interners.items():
            prefix = f"keys/{name}/"
            interner.load_state_dict({k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)})
        for i, op in enumerate(self.operators):
            prefix = f"ops/{i}/"
            op.load_state_dict({k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)})
