"""Cross-validated NAB scores: the threshold and the configuration chosen without the held-out category.

NAB itself sweeps one threshold per profile over the whole corpus and reports
the best: the threshold has seen every label it is scored on. Here each
category is held out in turn (:func:`tocsin.bench.crossval.leave_one_group_out`):

- :func:`threshold_cv` fixes the configuration; per profile the threshold is
  swept on the other categories' files (NAB's sweep, ties to the higher
  threshold) and *applied* to the held-out category
  (:func:`~tocsin.bench.nab_scoring.score_at_threshold`, no re-sweep);
- :func:`nested_cv` also chooses the configuration inside each fold: among the
  fixed candidates, the one whose :func:`threshold_cv` over the training
  categories alone is best (standard profile), exactly the way the default is
  chosen over all categories.

The cross-validated score is NAB's normalised score over the **union** of the
held-out predictions: raw, null and perfect summed over the folds, then
``100 * (raw - null) / (perfect - null)``, so each category weighs by its
windows as in NAB's corpus score. Per category, the normalised score at the
fold's fixed threshold is shown too; a category without windows (NAB's
``artificialNoAnomaly``) has no normalised score (perfect = null), only the
cost of its false positives (``raw``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tocsin.bench.crossval import choose, leave_one_group_out
from tocsin.bench.nab_scoring import CostWeights, ProfileScore, ScoredFile, score_at_threshold, score_corpus


def category_of(name: str) -> str:
    """NAB's category of ``category/file.csv``."""
    return name.split("/", 1)[0] if "/" in name else ""


@dataclass(frozen=True)
class HeldOut:
    """One profile's result on one held-out category."""

    group: str
    candidate: str
    threshold: float
    score: ProfileScore

    def as_dict(self) -> dict[str, Any]:
        s = self.score
        return {
            "candidate": self.candidate,
            "threshold": s.threshold,
            "score": round(s.score, 2) if s.perfect != s.null else None,
            "raw": round(s.raw, 4),
            "windows": s.true_positives + s.false_negatives,
            "detected_windows": s.true_positives,
            "false_positives": s.false_positives,
        }


def union_score(results: Sequence[ProfileScore]) -> float:
    """NAB's normalised score over the union of held-out results (raw, null and perfect summed)."""
    raw = sum(r.raw for r in results)
    null = sum(r.null for r in results)
    perfect = sum(r.perfect for r in results)
    return 100.0 * (raw - null) / (perfect - null) if perfect != null else 0.0


def _files(files: Mapping[str, ScoredFile], groups: Sequence[str]) -> list[ScoredFile]:
    wanted = set(groups)
    return [files[name] for name in sorted(files) if category_of(name) in wanted]


def threshold_cv(files: Mapping[str, ScoredFile], profiles: Mapping[str, CostWeights], candidate: str = "") -> dict[str, Any]:
    """One configuration's scores (``files``: name -> prepared file), the threshold swept on the
    other categories for each held-out one. Returns ``{"scores": {profile: cv score},
    "groups": {profile: {category: HeldOut}}}``."""
    folds = leave_one_group_out(category_of(name) for name in files)
    per_profile: dict[str, dict[str, HeldOut]] = {}
    scores: dict[str, float] = {}
    for profile, weights in profiles.items():
        held: dict[str, HeldOut] = {}
        for fold in folds:
            threshold = score_corpus(_files(files, fold.train), {profile: weights})[profile].threshold
            result = score_at_threshold(_files(files, [fold.held_out]), weights, threshold, profile)
            held[fold.held_out] = HeldOut(fold.held_out, candidate, threshold, result)
        per_profile[profile] = held
        scores[profile] = union_score([h.score for h in held.values()])
    return {"scores": scores, "groups": per_profile}


def in_sample(files: Mapping[str, ScoredFile], profiles: Mapping[str, CostWeights]) -> dict[str, Any]:
    """NAB's own protocol (one threshold per profile swept on every file), and each category
    scored at that threshold."""
    corpus = score_corpus([files[name] for name in sorted(files)], profiles)
    groups = sorted({category_of(name) for name in files})
    per_group = {
        profile: {g: HeldOut(g, "", corpus[profile].threshold, score_at_threshold(_files(files, [g]), weights, corpus[profile].threshold, profile)) for g in groups}
        for profile, weights in profiles.items()
    }
    return {"scores": {profile: s.score for profile, s in corpus.items()}, "corpus": corpus, "groups": per_group}


def nested_cv(
    prepared: Mapping[str, Mapping[str, ScoredFile]],
    profiles: Mapping[str, CostWeights],
    candidates: Sequence[str],
    select_profile: str = "standard",
) -> dict[str, Any]:
    """Choose the configuration and the thresholds without the held-out category, for each category.

    ``prepared``: candidate -> file name -> prepared file (every candidate run on
    every file). In each fold the candidate is chosen by its :func:`threshold_cv`
    score (``select_profile``) over the training categories alone; then, per
    profile, its threshold is swept on the training files and applied to the
    held-out category. Returns the union scores per profile and, per profile and
    category, the :class:`HeldOut` result (with the candidate chosen).
    """
    names = sorted(next(iter(prepared.values())))
    folds = leave_one_group_out(category_of(name) for name in names)
    select_weights = {select_profile: profiles[select_profile]}
    per_profile: dict[str, dict[str, HeldOut]] = {profile: {} for profile in profiles}
    chosen: dict[str, str] = {}
    for fold in folds:
        train_names = [name for name in names if category_of(name) in fold.train]

        def inner_score(candidate: str, train_names: list[str] = train_names, n_train: int = len(fold.train)) -> float:
            files = {name: prepared[candidate][name] for name in train_names}
            if n_train < 2:  # one training category: nothing to hold out inside it
                return score_corpus(list(files.values()), select_weights)[select_profile].score
            return threshold_cv(files, select_weights, candidate)["scores"][select_profile]

        best = choose(list(candidates), inner_score)
        chosen[fold.held_out] = best
        for profile, weights in profiles.items():
            threshold = score_corpus(_files(prepared[best], fold.train), {profile: weights})[profile].threshold
            result = score_at_threshold(_files(prepared[best], [fold.held_out]), weights, threshold, profile)
            per_profile[profile][fold.held_out] = HeldOut(fold.held_out, best, threshold, result)
    scores = {profile: union_score([h.score for h in held.values()]) for profile, held in per_profile.items()}
    return {"scores": scores, "groups": per_profile, "chosen": chosen}
