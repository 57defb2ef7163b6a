"""The Pipeline: decode → features → score → calibrate → threshold → explanations.

One object, used unchanged by the streaming runner, the HTTP service and the
backtester, so training, backtests and live scoring run the same code (no
train/serve skew). It is a pure function of its state and the batch: all state
(feature state, fitted detector, calibration reference, threshold) is exported
by :meth:`Pipeline.state_dict` for checkpoints.

Until ``detector.warmup_events`` events have been seen the detector is not
fitted: those events update feature state and become its training rows, and
they are returned unscored (``score`` NaN, never anomalous). Afterwards the
detector is refitted on the last ``detector.train_window`` feature rows (see
:mod:`tocsin.engine.training`) after ``detector.refit_every`` events, then at
intervals growing by ``refit_growth`` up to ``refit_max_every`` (entity state
matures early in a stream; later refits follow drift at little cost), and
calibration restarts from the new model's scores of those rows.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from tocsin.batch import EventBatch
from tocsin.decode import RAW_FIELD, DeadLetter, Decoder
from tocsin.detectors import build_detector
from tocsin.detectors.calibration import ScoreCalibrator
from tocsin.detectors.thresholds import assign_severity, build_threshold
from tocsin.engine.admission import Admission
from tocsin.engine.aggregate import Aggregator
from tocsin.engine.derive import Derivations
from tocsin.engine.drift import DriftMonitor
from tocsin.engine.quality import QualityProfiler
from tocsin.engine.rules import PipelineRules
from tocsin.engine.silence import SilenceWatch
from tocsin.engine.supervised import SupervisedRanker
from tocsin.engine.training import TrainingWindow
from tocsin.features.featureset import ENTITY, FeatureFrame, FeatureSet
from tocsin.sources.base import SourceBatch
from tocsin.spec import PipelineSpec, SpecError
from tocsin.threads import helper_pool
from tocsin.vocabulary import SEVERITIES, Words, score_100

TOP_CONTRIBUTIONS = 3
CALIBRATION_SEED_ROWS = 10_000


@dataclass
class ScoredBatch:
    """A batch with its decisions. Rows are the valid events, in arrival order."""

    events: EventBatch
    features: FeatureFrame | None
    raw_score: np.ndarray
    score: np.ndarray
    is_anomaly: np.ndarray
    severity: np.ndarray
    explanations: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    scored: np.ndarray | None = None
    seconds: float = 0.0
    #: (row, column, PSI) where the model's inputs or score had drifted past ``drift.psi_alert`` at that row
    drift: list[tuple[int, str, float]] = field(default_factory=list)
    #: anomalies about no single event: silences due after this batch (:mod:`tocsin.engine.silence`) and
    #: schema changes of a profiled source (:mod:`tocsin.engine.quality`)
    notices: list[dict[str, Any]] = field(default_factory=list)
    #: entities that reported again after a silence (their silence alerts resolve)
    returned: list[str] = field(default_factory=list)
    #: input records this batch folded in (events, or the rows an aggregating or profiling pipeline turned into
    #: readings, dead letters included); 0 for what fell due while idle
    records: int = 0

    def __len__(self) -> int:
        return len(self.events)

    @property
    def score_100(self) -> np.ndarray:
        """The calibrated score on the 0–100 scale people read."""
        return score_100(self.score)

    @property
    def anomaly_rows(self) -> np.ndarray:
        return np.flatnonzero(self.is_anomaly)

    def severity_name(self, row: int) -> str | None:
        code = int(self.severity[row])
        return SEVERITIES[code] if code >= 0 else None

    def event_fields(self, row: int) -> dict[str, Any]:
        """The event as it arrived (all fields, unknown ones included) where the raw record is kept."""
        raw = self.events.extra.get(RAW_FIELD)
        if raw is not None:
            try:
                return msgspec.json.decode(raw[row])
            except msgspec.DecodeError:
                pass
        events = self.events
        fields: dict[str, Any] = {"id": events.ids[row], "key": events.keys[row], "time": float(events.times[row])}
        fields.update({k: float(v[row]) for k, v in events.numeric.items()})
        fields.update({k: str(v[row]) for k, v in events.categorical.items()})
        fields.update({k: _plain(v[row]) for k, v in events.extra.items() if k != RAW_FIELD})
        return fields

    def anomaly_records(self, detector: str) -> list[dict[str, Any]]:
        """One store row per anomaly, keyed by event id (idempotent on replay)."""
        events, records = self.events, []
        rows = self.anomaly_rows
        # the anomalies' scores scaled once (the property scales the whole batch)
        for row, on_100 in zip(rows.tolist(), score_100(self.score[rows]).tolist()):
            records.append(
                {
                    "event_id": str(events.ids[row]),
                    "entity": str(events.keys[row]),
                    "event_time": float(events.times[row]),
                    "score": float(self.score[row]),
                    "score_100": on_100,
                    "raw_score": float(self.raw_score[row]),
                    "severity": self.severity_name(row),
                    "detector": detector,
                    "explanation": self.explanations.get(row, []),
                    "fields": self.event_fields(row),
                    "label": None if events.labels is None else int(events.labels[row]),
                }
            )
        return records


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _dead_letter(events: EventBatch, row: int, code: str, reason: str, source: str) -> DeadLetter:
    """A decoded event refused admission, as a dead letter with its raw record (or its fields)."""
    raw = events.extra.get(RAW_FIELD)
    if raw is not None:
        record = raw[row]
    else:
        fields = {"id": events.ids[row], "key": events.keys[row], "time": float(events.times[row])}
        fields.update({k: float(v[row]) for k, v in events.numeric.items()})
        fields.update({k: str(v[row]) for k, v in events.categorical.items()})
        record = msgspec.json.encode(fields, enc_hook=str)
    return DeadLetter(source=source, position=int(events.positions[row]), reason=reason, raw=bytes(record), code=code)


def _in_position_order(letters: list[DeadLetter]) -> list[DeadLetter]:
    return sorted(letters, key=lambda letter: letter.position)


class Pipeline:
    """Scores batches of events according to a :class:`PipelineSpec`."""

    def __init__(self, spec: PipelineSpec) -> None:
        self.spec = spec
        self.features = FeatureSet.from_spec(spec)
        names = self.features.names
        wanted = spec.detector.features or names
        unknown = [n for n in wanted if n not in names]
        if unknown:
            raise SpecError(
                f"invalid pipeline spec: detector.features names {unknown}, which no feature produces; "
                f"choose from {names}"
            )
        self.feature_names: list[str] = list(wanted)
        self._columns = np.array([names.index(n) for n in wanted], dtype=np.int64)
        try:  # kind, capabilities and params are checked here, not after the warm-up
            self.detector = build_detector(spec.detector.kind, spec.detector.params, self.feature_names)
        except SpecError as error:
            raise SpecError(f"invalid pipeline spec: {error}") from None
        self.calibrator = ScoreCalibrator(window=spec.calibration.window, tail_quantile=spec.calibration.tail_quantile)
        self.threshold = build_threshold(spec.threshold)
        self._decoders: dict[str, Decoder] = {}
        self._ahead: list[tuple[SourceBatch, str, Future]] = []  # scans started by decode_ahead, oldest first
        #: which decoded events may change state: the event-time clock and repeated ids
        self.admission = Admission(spec.admission)
        self.training = TrainingWindow(spec.detector.train_window, len(self.feature_names))
        self._since_fit = 0
        self._scored_total = 0
        self._pending_raw: list[np.ndarray] = []  # scores of the current segment, folded in at its end
        self._pending_score: list[np.ndarray] = []
        self._pending_X: list[np.ndarray] = []
        #: how far the scored features and the score moved from the model's training rows
        self.drift = DriftMonitor(spec.drift, self.feature_names, quiet=self.features.growing_with_history())
        self.fits = 0
        self.events_seen = 0
        #: the registry version installed (0: none; the model is the pipeline's own fit)
        self.model_version = 0
        #: the versions installed and the stream position each took over after, oldest first
        self.model_switches: list[tuple[int, int]] = []
        #: no refits of its own (a model from the registry scores, or a trained model is being evaluated)
        self.frozen = False
        #: the supervised re-ranker (spec.supervised.enabled), or None
        self.supervised: SupervisedRanker | None = None
        if spec.supervised.enabled:
            self.supervised = SupervisedRanker(spec.supervised, window=spec.calibration.window,
                                               tail_quantile=spec.calibration.tail_quantile)
        self._pending_blend: list[np.ndarray] = []
        #: per label source ("kafka-labels:topic/0"), the position of the next label to apply: labels are
        #: applied once each, and this is saved with the state they changed (exactly once across crashes)
        self.labels_applied: dict[str, int] = {}
        #: derived fields (schema.derived), computed before everything else
        self.derivations = Derivations(spec.event_schema)
        #: rules beside the model: what they fire on is an anomaly (spec.rules; checked against the features here)
        self.rules = PipelineRules(spec, self.features.names)
        #: events into per-entity readings per time bucket (spec.aggregate), or None
        self.aggregator: Aggregator | None = Aggregator(spec.aggregate) if spec.aggregate is not None else None
        #: rows of a table into readings of their health per source and bucket (spec.quality), or None
        self.profiler: QualityProfiler | None = QualityProfiler(spec) if spec.quality is not None else None
        self._notices: list[dict[str, Any]] = []  # the profiler's schema changes, out with the next processed batch
        #: entities that stop reporting (spec.silence.enabled), or None
        self.silence: SilenceWatch | None = None
        if spec.silence.enabled:
            noun = Words.of(spec.event_schema.key_field).entity
            self.silence = SilenceWatch(spec.silence, noun, (spec.silence.severity, spec.severity_cutoff(spec.silence.severity)))

    # --- inputs -------------------------------------------------------------

    def decode_ahead(self, raw: SourceBatch, source: str) -> None:
        """Start decoding ``raw``, the batch after the one about to be processed, on a helper thread: the
        compiled scanning (:meth:`Decoder.scan_lines`) holds no GIL, so it runs on the second core while this
        thread processes the batch before it. The :meth:`process_raw` (or :meth:`decode`) call for ``raw``
        takes the scan and makes the columns (the strings need the GIL: made on the helper they only waited
        for it). Scans started for batches that are never processed are dropped (at most two are kept).
        Scanning is stateless, so the result is the same as decoding in line; a profiled source
        (``spec.quality``), whose decoding folds rows into its buckets, and inputs other than JSON lines are
        decoded in line as before."""
        helper = _decode_helper()
        if helper is None or raw.lines is None or not len(raw) or self.profiler is not None:
            return
        while len(self._ahead) >= 2:
            _drop(self._ahead.pop(0))
        self._ahead.append((raw, source, helper.submit(self._decoder(source).scan_lines, raw.lines)))

    def _decoder(self, source: str) -> Decoder:
        decoder = self._decoders.get(source)
        if decoder is None:
            decoder = self._decoders[source] = Decoder(self.spec.event_schema, source=source)
        return decoder

    def decode(self, raw: SourceBatch, source: str) -> tuple[EventBatch, list[DeadLetter]]:
        """A source's raw records as a validated batch plus dead letters (with ``spec.quality``: the readings of
        the buckets the rows closed; their schema changes go out with the next processed batch)."""
        for index, (ahead, ahead_source, scan) in enumerate(self._ahead):
            if ahead is raw and ahead_source == source:
                for skipped in self._ahead[:index]:  # batches before this one that were never processed
                    _drop(skipped)
                del self._ahead[: index + 1]
                return self._decoder(source).decode_lines(raw.lines, raw.positions, scan.result())
        if self.profiler is not None:
            self.profiler.source = source
            readings, dead, notices = self.profiler.fold(raw)
            self._notices += notices
            return readings, dead
        if raw.events is not None:
            return raw.events, []
        decoder = self._decoder(source)
        if raw.lines is not None:
            return decoder.decode_lines(raw.lines, raw.positions)
        if raw.table is not None:
            return decoder.decode_table(raw.table, raw.positions)
        if raw.records is not None:
            return decoder.decode_records(raw.records, raw.positions)
        return EventBatch.empty(self.spec.event_schema.numeric, self.spec.event_schema.categorical), []

    def process_raw(self, raw: SourceBatch, source: str) -> ScoredBatch:
        started = time.perf_counter()
        events, dead = self.decode(raw, source)
        scored = self.process(events, source)
        scored.dead_letters = _in_position_order(dead + scored.dead_letters) if dead and scored.dead_letters else dead or scored.dead_letters
        scored.seconds = time.perf_counter() - started
        scored.records = len(raw)
        return scored

    def process_records(self, records: list[dict[str, Any]], source: str = "api") -> ScoredBatch:
        """Score Python dicts (the HTTP path)."""
        positions = np.arange(len(records), dtype=np.int64)
        return self.process_raw(SourceBatch(positions=positions, next_position=len(records), records=records), source)

    # --- the work -----------------------------------------------------------

    @property
    def unmodelled_series(self) -> int:
        """Series past a series feature's ``max_series`` budget: seen, counted, not modelled."""
        return sum(getattr(op, "unmodelled", 0) for op in self.features.operators)

    @property
    def is_warm(self) -> bool:
        return self.detector.is_fitted

    def process(self, events: EventBatch, source: str = "input") -> ScoredBatch:
        """Admission (:mod:`tocsin.engine.admission`: out-of-window times and repeated ids become dead
        letters), then features for every admitted event (updating state), then scores and decisions
        for the scored part."""
        started = time.perf_counter()
        rejected: list[DeadLetter] = []
        if len(events) and self.derivations:
            events, undefined = self.derivations.apply(events)
            if undefined:
                rejected = [_dead_letter(events, row, "not_finite", reason, source) for row, reason in undefined]
                keep = np.ones(len(events), dtype=bool)
                keep[[row for row, _ in undefined]] = False
                events = events.take(keep)
        if len(events):
            admitted, refusals = self.admission.admit(events)
            if refusals:
                rejected += [_dead_letter(events, row, code, reason, source) for row, code, reason in refusals]
                events = events.take(admitted)
        if self.aggregator is not None:  # the features see the closed buckets' readings, not the events
            readings, late = self.aggregator.fold(events, self.admission.watermark)
            every = self.aggregator.spec.every
            rejected += [_dead_letter(events, row, "late", (
                f"field `{self.spec.event_schema.time_field}`: event time {float(events.times[row]):.3f} falls in a bucket that closed (buckets of "
                f"{every:g} s close {self.aggregator.spec.lateness:g} s after their end; see aggregate.lateness)"), source)
                for row in late.tolist()]
            events = readings
        n = len(events)
        frame = self.features.transform_update(events) if n else None
        raw = np.full(n, np.nan)
        score = np.full(n, np.nan)
        is_anomaly = np.zeros(n, dtype=bool)
        severity = np.full(n, -1, dtype=np.int8)
        scored = np.zeros(n, dtype=bool)
        explanations: dict[int, list[dict[str, Any]]] = {}
        drift: list[tuple[int, str, float]] = []
        self.events_seen += n
        if n:
            X = frame.X[:, self._columns] if len(self._columns) != frame.X.shape[1] else frame.X
            start = 0
            if not self.is_warm:
                start = min(n, max(0, self.spec.detector.warmup_events - len(self.training)))
                self.training.extend(X[:start])
                if len(self.training) >= self.spec.detector.warmup_events:
                    self._refit()
            if start < n and self.is_warm:
                self._score(X, frame, start, raw, score, is_anomaly, severity, explanations, drift)
                scored[start:] = True
            if self.rules:
                self.rules.apply(frame, score, is_anomaly, severity, scored, explanations)
                raw[np.isnan(raw) & is_anomaly] = 0.0  # a rule hit during the model's warm-up has no raw score
        notices, self._notices = self._notices, []
        returned: list[str] = []
        if self.silence is not None:
            entities = self.features.interners[ENTITY]
            if n:
                silent, returned = self.silence.observe(frame.entity_ids, events.times, entities)
                notices += silent
            notices += self.silence.due(self.admission.watermark, entities)
        return ScoredBatch(
            events=events, features=frame, raw_score=raw, score=score, is_anomaly=is_anomaly,
            severity=severity, explanations=explanations, dead_letters=rejected, scored=scored,
            seconds=time.perf_counter() - started, drift=drift, notices=notices, returned=returned,
        )

    @property
    def has_timers(self) -> bool:
        """Whether something falls due by event time with no event arriving (silences, a profiled source's buckets):
        an idle input must then be ticked (:meth:`idle`)."""
        return self.silence is not None or self.profiler is not None

    @property
    def clock(self) -> float:
        """The stream's event-time clock: the latest admitted event time (a profiled source's: its latest row's)."""
        return self.profiler.clock if self.profiler is not None else self.admission.watermark

    def idle(self, clock: float) -> ScoredBatch | None:
        """What falls due at event time ``clock`` while no event arrives (an idle input whose clock the driver
        moves by wall time): a profiled source's buckets that closed, scored, and silence anomalies; None when
        nothing did."""
        return self._fell_due(self.profiler.close_at(clock) if self.profiler is not None else None, clock)

    def finish(self) -> ScoredBatch | None:
        """The input ended: a profiled source's open buckets close as they are and are scored (a file of batch
        loads says its last load's health); None when nothing was open."""
        return self._fell_due(self.profiler.close_all(), None) if self.profiler is not None else None

    def _fell_due(self, closed: tuple[EventBatch, list[dict[str, Any]]] | None, clock: float | None) -> ScoredBatch | None:
        """One batch of what fell due with no event: the ``closed`` buckets' readings (scored) and schema changes,
        then the silences due by ``clock`` (None: none are looked for); None when there is nothing."""
        scored = None
        if closed is not None and (len(closed[0]) or closed[1]):
            self._notices += closed[1]
            scored = self.process(closed[0])
        due = self.silence.due(clock, self.features.interners[ENTITY]) if clock is not None and self.silence is not None else []
        if due and scored is None:
            empty = EventBatch.empty(self.spec.event_schema.numeric, self.spec.event_schema.categorical)
            nothing = np.empty(0)
            scored = ScoredBatch(events=empty, features=None, raw_score=nothing, score=nothing, is_anomaly=np.zeros(0, dtype=bool),
                                 severity=np.zeros(0, dtype=np.int8), scored=np.zeros(0, dtype=bool))
        if due:
            scored.notices += due
        return scored

    def _score(self, X, frame, start, raw, score, is_anomaly, severity, explanations, drift) -> None:
        """Score rows ``start:`` in segments that end where the scored-event count crosses a
        multiple of ``calibration.update_every``; calibration, threshold and refits change only
        at those ends, so the decisions do not depend on how the stream was cut into batches.

        The detector scores every row up front in one call (a raw score depends on the model alone, not on
        calibration: one call shares the rows out between the cores once, not once per segment); a refit
        mid-batch scores the rows after it again with the new model. Flagged rows are explained likewise,
        in one call per model."""
        step = self.spec.calibration.update_every
        refit_every = self.spec.detector.refit_every
        pos, n = start, len(X)
        ahead_from, ahead = pos, self.detector.score_samples(np.ascontiguousarray(X[pos:]))
        unexplained: list[np.ndarray] = []  # flagged rows whose explanations wait for one call per model

        def explain_waiting() -> None:
            if unexplained:
                explanations.update(self._explain(X, frame, np.concatenate(unexplained)))
                unexplained.clear()
        while pos < n:
            end = min(n, pos + step - self._scored_total % step)
            rows = slice(pos, end)
            segment = np.ascontiguousarray(X[rows])
            raw[rows] = ahead[pos - ahead_from:end - ahead_from]
            score[rows] = self.calibrator.transform(raw[rows])
            supervised = None
            if self.supervised is not None:  # it learns from every feature, the ones the detector leaves out too
                every = frame.X[rows]
                self.supervised.observe(frame.batch.ids[rows], frame.batch.times[rows], every, raw[rows])
                if self.supervised.is_fitted:
                    unsupervised = score[rows].copy()
                    score[rows], blend, probability = self.supervised.rescore(every, raw[rows], unsupervised)
                    self._pending_blend.append(blend)
                    supervised = (unsupervised, probability)
            is_anomaly[rows] = score[rows] >= self.threshold.current
            flagged = np.flatnonzero(is_anomaly[rows]) + pos
            if len(flagged):
                severity[flagged] = assign_severity(score[flagged], self.spec.severity.warning, self.spec.severity.critical)
                unexplained.append(flagged)
                if supervised is not None:  # it puts its words before the explanation's
                    explain_waiting()
                    self._say_what_labels_added(explanations, flagged, pos, supervised, score, frame)
            self.training.extend(segment)
            self._pending_raw.append(raw[rows].copy())
            self._pending_score.append(score[rows].copy())
            self._pending_X.append(segment.copy())
            self._scored_total += end - pos
            self._since_fit += end - pos
            if self._scored_total % step == 0:  # a segment boundary: the shared state moves on
                self.calibrator.update(np.concatenate(self._pending_raw))
                self.threshold.decide(np.concatenate(self._pending_score))
                self.drift.observe(np.concatenate(self._pending_X), np.concatenate(self._pending_raw))
                if self.supervised is not None:
                    if self._pending_blend and self.supervised.is_fitted:
                        self.supervised.calibrator.update(np.concatenate(self._pending_blend))
                    self._pending_blend = []
                if self.spec.drift.psi_alert is not None and self.model_version:
                    # alerts for a model from the registry, trained on history: the pipeline's own early fits
                    # learn from immature entity state, which matures (drifts) by design
                    drift.extend((end - 1, column, psi) for column, psi in self.drift.drifted())
                self._pending_raw, self._pending_score, self._pending_X = [], [], []
                if refit_every is not None and not self.frozen and self._since_fit >= self._refit_interval():
                    explain_waiting()  # by the model that scored them
                    self._refit()  # a model installed from the registry is not replaced by a local refit
                    if end < n:
                        ahead_from, ahead = end, self.detector.score_samples(np.ascontiguousarray(X[end:]))
            pos = end
        explain_waiting()

    def _say_what_labels_added(self, explanations: dict, flagged: np.ndarray, pos: int,
                               supervised: tuple[np.ndarray, np.ndarray], score: np.ndarray, frame: Any) -> None:
        """Put first, in a flagged event's explanation, that the supervised model raised its score, and the
        label evidence behind it (the ``confirmed`` features that are not zero)."""
        unsupervised, probability = supervised
        confirmed = [name for name in frame.names if "confirmed_" in name]
        for row in flagged.tolist():
            u, p = float(unsupervised[row - pos]), float(probability[row - pos])
            if score[row] <= u:
                continue
            evidence = [frame.describe(name, row) for name in confirmed if frame.X[row, frame.names.index(name)] > 0][:2]
            text = (f"score raised by the supervised model ({100 * u:.1f} unsupervised → {100 * score[row]:.1f}; "
                    f"it gives {p:.0%} after {self.supervised.positives_at_fit:,} confirmed labels)")
            if evidence:
                text += ": " + "; ".join(evidence)
            item = {"feature": "supervised", "value": p, "contribution": float(score[row] - u), "text": text}
            explanations[row] = [item, *explanations.get(row, [])]

    def fit(self, X: np.ndarray) -> None:
        """Fit the detector on feature rows and calibrate against its scores of those rows."""
        X = np.ascontiguousarray(X)
        self.detector.fit(X)
        self.calibrator = ScoreCalibrator(window=self.spec.calibration.window, tail_quantile=self.spec.calibration.tail_quantile)
        # Calibrate on an evenly spaced subsample: enough for the reference, a fraction of the cost.
        stride = max(1, len(X) // CALIBRATION_SEED_ROWS)
        sample = np.ascontiguousarray(X[::stride])
        sample_scores = self.detector.score_samples(sample)
        self.calibrator.update(sample_scores)
        self.drift.set_reference(sample, sample_scores)  # what drift is measured against
        self._since_fit = 0
        self.fits += 1

    # --- models from the registry ---------------------------------------------

    def model_arrays(self) -> dict[str, np.ndarray]:
        """What a model version holds: the fitted detector, the calibration reference and the threshold
        (no per-entity feature state: that belongs to the stream). Raises if not fitted yet."""
        if not self.is_warm:
            raise ValueError(f"the detector is not fitted: it learns from the first {self.spec.detector.warmup_events:,} events")
        arrays: dict[str, np.ndarray] = {}
        for prefix, part in (("detector", self.detector), ("calibrator", self.calibrator), ("threshold", self.threshold)):
            arrays.update({f"{prefix}/{k}": v for k, v in part.state_dict().items()})
        drift = self.drift.state_dict()
        arrays.update({"drift/edges": drift["edges"], "drift/reference": drift["reference"]})
        arrays["model/meta"] = np.array(json.dumps({"features": self.feature_names, "detector": self.spec.detector.kind}))
        return arrays

    def check_model(self, arrays: dict[str, np.ndarray], version: int) -> None:
        """Raise ValueError naming the difference when model ``version`` was trained for other features or
        another detector than this pipeline's (it could not score these rows)."""
        if "model/meta" not in arrays:
            raise ValueError(f"model version {version} holds no model/meta: it was not written by tocsin train (or a newer tocsin)")
        meta = json.loads(str(arrays["model/meta"][()]))
        if meta["detector"] != self.spec.detector.kind or meta["features"] != self.feature_names:
            raise ValueError(
                f"model version {version} was trained for detector {meta['detector']!r} on features {meta['features']}; "
                f"this pipeline runs {self.spec.detector.kind!r} on {self.feature_names}: train a version for this spec"
            )

    def install_model(self, arrays: dict[str, np.ndarray], version: int, position: int) -> None:
        """Score with model ``version`` from the event after ``position`` on (call between batches). Feature
        state stays; the calibration segment under way is dropped (its scores were the old model's); the
        pipeline stops refitting on its own (the registry now says which model scores)."""
        self.check_model(arrays, version)

        def part(prefix: str) -> dict[str, np.ndarray]:
            return {k[len(prefix) + 1:]: v for k, v in arrays.items() if k.startswith(prefix + "/")}

        self.detector.load_state_dict(part("detector"))
        self.calibrator.load_state_dict(part("calibrator"))
        self.threshold.load_state_dict(part("threshold"))
        reference = part("drift")
        if reference:
            self.drift.load_state_dict({**reference, "counts": np.zeros_like(reference["reference"])})
        self._pending_raw, self._pending_score, self._pending_X = [], [], []
        self._since_fit = 0
        self.model_version = int(version)
        self.model_switches.append((int(position), int(version)))
        self.frozen = True

    def _refit_interval(self) -> float:
        """Scored events between the latest fit and the next: growing geometrically from ``refit_every``."""
        detector = self.spec.detector
        return min(detector.refit_every * detector.refit_growth ** max(0, self.fits - 1), detector.refit_max_every)

    def _refit(self) -> None:
        self.fit(self.training.rows())

    def _explain(self, X: np.ndarray, frame: FeatureFrame, rows: np.ndarray) -> dict[int, list[dict[str, Any]]]:
        """Each flagged row's top contributions, worded by the features (one sort for all the rows; then only
        the few leading features of each row are put into words)."""
        contributions = self.detector.explain(np.ascontiguousarray(X[rows]))
        top = np.argsort(-contributions, axis=1, kind="stable")[:, : TOP_CONTRIBUTIONS + 2]
        shares = np.take_along_axis(contributions, top, axis=1).tolist()
        values = np.take_along_axis(X[rows], top, axis=1).tolist()
        names = self.feature_names
        out: dict[int, list[dict[str, Any]]] = {}
        for i, row in enumerate(rows.tolist()):
            items: dict[str, dict[str, Any]] = {}  # by text: the z-score and the ratio of one field may say one thing
            for j, share, value in zip(top[i].tolist(), shares[i], values[i]):
                if share <= 0:
                    break
                name = names[j]
                text = frame.describe(name, row)
                same = items.get(text)
                if same is not None:
                    same["contribution"] = round(same["contribution"] + share, 4)
                    continue
                items[text] = {"feature": name, "value": value, "contribution": round(share, 4), "text": text}
            out[row] = list(items.values())[:TOP_CONTRIBUTIONS]
        return out

    # --- labels -------------------------------------------------------------

    def apply_labels(self, labelled: EventBatch, at: np.ndarray, source: str, positions: np.ndarray) -> int:
        """Fold in labels (``labelled.labels``) that arrived at event times ``at``, from ``source`` at
        ``positions`` (increasing): those at or past the source's next position are applied, once, and the
        position moves past them. Returns how many were applied. Only later events see them."""
        start = self.labels_applied.get(source, 0)
        fresh = np.flatnonzero(np.asarray(positions) >= start)
        if not len(fresh):
            return 0
        self.features.apply_labels(labelled.take(fresh), np.asarray(at, dtype=np.float64)[fresh])
        if self.supervised is not None and labelled.labels is not None:
            # the model changes only when labels arrive, so a checkpoint never holds a fit that is due
            self.supervised.label(labelled.ids[fresh], labelled.labels[fresh])
            if self.is_warm and self.supervised.fit_if_due(self.admission.watermark, self.calibrator.transform):
                self._pending_blend = []  # the blend's calibrator was just seeded afresh
        self.labels_applied[source] = int(np.asarray(positions)[fresh[-1]]) + 1
        return len(fresh)

    # --- state --------------------------------------------------------------

    def state_dict(self) -> dict[str, np.ndarray]:
        """All state as flat named arrays: what a checkpoint saves."""
        state: dict[str, np.ndarray] = {}
        for prefix, part in (("features", self.features), ("calibrator", self.calibrator), ("threshold", self.threshold),
                             ("admission", self.admission), ("drift", self.drift)):
            state.update({f"{prefix}/{k}": v for k, v in part.state_dict().items()})
        if self.detector.is_fitted:
            state.update({f"detector/{k}": v for k, v in self.detector.state_dict().items()})
        state.update({f"training/{k}": v for k, v in self.training.state_dict().items()})
        if self.silence is not None:
            state.update({f"silence/{k}": v for k, v in self.silence.state_dict().items()})
        if self.aggregator is not None:
            state.update({f"aggregate/{k}": v for k, v in self.aggregator.state_dict().items()})
        if self.profiler is not None:
            state.update({f"quality/{k}": v for k, v in self.profiler.state_dict().items()})
        if self.supervised is not None:
            state.update({f"supervised/{k}": v for k, v in self.supervised.state_dict().items()})
            state["pending/blend"] = np.concatenate(self._pending_blend) if self._pending_blend else np.empty(0)
        state["pending/raw"] = np.concatenate(self._pending_raw) if self._pending_raw else np.empty(0)
        state["pending/score"] = np.concatenate(self._pending_score) if self._pending_score else np.empty(0)
        state["pending/X"] = np.concatenate(self._pending_X) if self._pending_X else np.empty((0, len(self.feature_names)))
        meta = {"events_seen": self.events_seen, "since_fit": self._since_fit, "scored_total": self._scored_total, "fits": self.fits, "spec_name": self.spec.name,
                "features": self.feature_names, "detector": self.spec.detector.kind, "model_version": self.model_version,
                "model_switches": self.model_switches, "frozen": self.frozen, "labels_applied": self.labels_applied}
        state["pipeline/meta"] = np.array(json.dumps(meta))
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        meta = json.loads(str(state["pipeline/meta"]))
        if meta["features"] != self.feature_names or meta["detector"] != self.spec.detector.kind:
            raise ValueError(
                "the checkpoint was written by a pipeline with other features or another detector; "
                "delete the checkpoint directory (checkpoint.dir) to start fresh"
            )

        def part(prefix: str) -> dict[str, np.ndarray]:
            cut = len(prefix) + 1
            return {k[cut:]: v for k, v in state.items() if k.startswith(prefix + "/")}

        self.features.load_state_dict(part("features"))
        self.calibrator.load_state_dict(part("calibrator"))
        self.threshold.load_state_dict(part("threshold"))
        detector_state = part("detector")
        if detector_state:
            self.detector.load_state_dict(detector_state)
        self.training.load_state_dict(part("training"))
        if self.supervised is not None:
            self.supervised.load_state_dict(part("supervised"))
            blend = state.get("pending/blend")
            self._pending_blend = [blend] if blend is not None and len(blend) else []
        if self.aggregator is not None and part("aggregate"):
            self.aggregator.load_state_dict(part("aggregate"))
        if self.profiler is not None and part("quality"):
            self.profiler.load_state_dict(part("quality"))
        silence = part("silence")
        if self.silence is not None and silence:
            self.silence.load_state_dict(silence)
        admission = part("admission")
        if admission:  # checkpoints from before admission start with a fresh clock
            self.admission.load_state_dict(admission)
        self._since_fit = int(meta["since_fit"])
        self._scored_total = int(meta["scored_total"])
        self._pending_raw = [state["pending/raw"]] if len(state["pending/raw"]) else []
        self._pending_score = [state["pending/score"]] if len(state["pending/score"]) else []
        pending_X = state.get("pending/X")
        self._pending_X = [pending_X] if pending_X is not None and len(pending_X) else []
        drift = part("drift")
        if drift:  # checkpoints from before drift monitoring start without a reference
            self.drift.load_state_dict(drift)
        self.fits = int(meta["fits"])
        self.events_seen = int(meta["events_seen"])
        self.model_version = int(meta.get("model_version", 0))
        self.frozen = bool(meta.get("frozen", self.model_version > 0))
        self.model_switches = [tuple(s) for s in meta.get("model_switches", [])]
        self.labels_applied = {str(k): int(v) for k, v in meta.get("labels_applied", {}).items()}


def _drop(ahead: tuple[SourceBatch, str, Future]) -> None:
    """Forget a scan started ahead: cancelled if it has not started, else waited for and its result dropped."""
    ahead[2].cancel() or ahead[2].exception()


def _decode_helper() -> ThreadPoolExecutor | None:
    """The one thread that decodes next batches ahead (None on one core: it would only take turns)."""
    return helper_pool("tocsin-decode", 1)
