"""Rules beside the model (the spec's ``rules``): what a rule fires on is an anomaly by definition.

Security and fraud teams know some patterns for certain: a login 8,000 km
from the last one an hour ago, one IP trying fifty user names. A model
calibrated over everything can rank such an event at 0.9926, under a 0.995
threshold, and nobody hears of it. So rules do not go through calibration:
an event a rule fires on is an anomaly with the rule's severity, its score is
at least that severity's cut-off (thresholds and alert routes keep their
meaning), and the rule's name and expression come first in its explanation,
before whatever the model said. Rules and the model run in one pipeline over
the same features; the model still scores every event.

Rules are the detector rules' expressions (:func:`tocsin.detectors.rules.parse_rule`:
whitelisted, no ``eval``), over every feature the pipeline computes,
including those keyed by another field (``ip.count_10m``). They are checked
against the feature names when the pipeline is built, so a typo fails at load
with the rule and the names it could use. They hold no state, so batch cuts
and restarts change nothing. Rules fire from the first event, during the
model's warm-up too.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

import numpy as np

from tocsin.expressions import RuleError, as_bool, evaluate, parse_rule
from tocsin.features.featureset import FeatureFrame
from tocsin.spec import PipelineSpec, SpecError
from tocsin.vocabulary import SEVERITY_ORDER


@dataclass(frozen=True)
class CompiledRule:
    name: str
    when: str
    tree: ast.Expression
    columns: list[str]
    severity: int
    score: float


class PipelineRules:
    """The spec's rules, compiled against the pipeline's feature names."""

    def __init__(self, spec: PipelineSpec, feature_names: list[str]) -> None:
        self.rules: list[CompiledRule] = []
        for i, rule in enumerate(spec.rules):
            try:
                tree, columns = parse_rule(rule.when)
            except RuleError as error:
                raise SpecError(f"invalid pipeline spec: rules.{i}.when: {error}") from None
            unknown = [c for c in columns if c not in feature_names]
            if unknown:
                raise SpecError(f"invalid pipeline spec: rules.{i}.when names {unknown}, which no feature produces; "
                                f"choose from {feature_names}")
            self.rules.append(CompiledRule(rule.name, rule.when, tree, columns, SEVERITY_ORDER[rule.severity],
                                           spec.severity_cutoff(rule.severity)))

    def __bool__(self) -> bool:
        return bool(self.rules)

    def apply(self, frame: FeatureFrame, score: np.ndarray, is_anomaly: np.ndarray, severity: np.ndarray,
              scored: np.ndarray, explanations: dict[int, list[dict[str, Any]]]) -> int:
        """Make every event a rule fires on an anomaly (in place); returns how many rule hits there were."""
        n = len(frame.batch)
        columns = {name: frame.X[:, j] for j, name in enumerate(frame.names)}
        hits = 0
        for rule in self.rules:
            rows = np.flatnonzero(np.broadcast_to(as_bool(evaluate(rule.tree.body, columns, n)), (n,)))
            if not len(rows):
                continue
            hits += len(rows)
            is_anomaly[rows] = True
            scored[rows] = True
            severity[rows] = np.maximum(severity[rows], rule.severity)
            score[rows] = np.fmax(score[rows], rule.score)  # NaN (warm-up) becomes the cut-off
            for row in rows.tolist():
                item = {"feature": f"rule:{rule.name}", "value": 1.0, "contribution": 1.0,
                        "text": f"rule {rule.name}: {rule.when}"}
                explanations[row] = [item, *explanations.get(row, [])]
        return hits
