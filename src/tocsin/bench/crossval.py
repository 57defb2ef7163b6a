"""Honest model selection for the benchmarks: leave one group out, choosing only on the others.

A benchmark that picks its configuration on the data it reports says nothing
about data it has not seen. The protocol here, shared by ``tocsin bench nab
--cv`` and ``tocsin bench adbench --cv``:

1. The **candidate set** is fixed before any held-out score is looked at (the
   benchmark module's ``CV_CANDIDATES``).
2. The data is cut into **groups** (NAB: its categories; ADBench: its
   datasets). For each group in turn, that group is *held out*: the candidate
   is chosen, and anything else that is fitted across series (NAB's threshold),
   using the other groups only; the choice is then scored on the held-out group.
   :func:`leave_one_group_out` yields the folds and nothing else crosses them.
3. The **cross-validated score** aggregates the held-out results only, each
   made with its own fold's choices.
4. The **default** is the candidate with the best cross-validated score of its
   own; the nested estimate (choosing inside each fold the way the default is
   chosen overall) says what that way of choosing is worth on unseen data.

Nothing here knows NAB or ADBench: the callers pass a scoring function over
groups, and :func:`choose` picks the best candidate by it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Fold:
    """One fold: the group scored, and the groups every choice is made on."""

    held_out: str
    train: tuple[str, ...]


def leave_one_group_out(groups: Iterable[str]) -> list[Fold]:
    """One fold per distinct group (sorted), training on all the others.

    >>> [(f.held_out, f.train) for f in leave_one_group_out(["b", "a", "c", "a"])]
    [('a', ('b', 'c')), ('b', ('a', 'c')), ('c', ('a', 'b'))]
    """
    distinct = sorted(set(groups))
    if len(distinct) < 2:
        raise ValueError(f"leave-one-group-out needs at least 2 groups, got {distinct}")
    return [Fold(g, tuple(other for other in distinct if other != g)) for g in distinct]


def choose(candidates: Sequence[str], criterion: Callable[[str], float]) -> str:
    """The candidate with the highest criterion; ties go to the earliest in ``candidates``
    (list the simpler or the incumbent configuration first).

    >>> choose(["a", "b", "c"], {"a": 1.0, "b": 2.0, "c": 2.0}.get)
    'b'
    """
    if not candidates:
        raise ValueError("no candidates to choose from")
    best, best_value = candidates[0], criterion(candidates[0])
    for name in candidates[1:]:
        value = criterion(name)
        if value > best_value:
            best, best_value = name, value
    return best
