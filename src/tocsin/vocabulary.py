"""The words every part of tocsin shares: severity names and the 0–100 scale people read.

A leaf: it imports nothing from tocsin, so the spec, the engine, the store and
the API can all take their vocabulary from here and never drift apart (six
modules once spelled the severity names out each on their own).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

#: severity names by code: a scored batch carries codes 0, 1, 2 (-1: not an anomaly)
SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")
Severity = Literal["info", "warning", "critical"]
SEVERITY_ORDER: dict[str, int] = {name: code for code, name in enumerate(SEVERITIES)}
#: the severities an alert can have (an ``info`` anomaly never opens one)
ALERT_SEVERITIES: tuple[str, ...] = SEVERITIES[1:]


def score_100(score: float | np.ndarray) -> float | np.ndarray:
    """A calibrated score in [0, 1] on the 0–100 scale people read, to two decimals.

    >>> score_100(0.99937)
    99.94
    """
    scaled = np.round(np.asarray(score, dtype=np.float64) * 100.0, 2)
    return float(scaled) if scaled.ndim == 0 else scaled


#: labels that are mass nouns (no plural) and what their negative is called
_MASS_NOUNS = {"fraud": "legit"}


def plural(noun: str) -> str:
    """The plural of a simple English noun (a spec's entity or label name).

    >>> [plural(n) for n in ("host", "service", "proxy", "day", "bus", "switch", "fraud")]
    ['hosts', 'services', 'proxies', 'days', 'buses', 'switches', 'fraud']
    """
    if noun in _MASS_NOUNS:
        return noun
    if noun.endswith("y") and noun[-2:-1] not in ("", *"aeiou"):
        return noun[:-1] + "ies"
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    return noun + "s"


@dataclass(frozen=True)
class Words:
    """What a pipeline's people call its things, from its schema: the entity (the key field: ``card_id``
    is a card, ``host`` a host) and the ground-truth label (``is_fraud`` is fraud, ``is_incident`` an
    incident), so a live view or page over host metrics says "hosts" and "incidents", never "cards".

    >>> words = Words.of("card_id", "is_fraud")
    >>> words.entity, words.entities, words.label, words.labels, words.negative, words.label_kinds
    ('card', 'cards', 'fraud', 'fraud', 'legit', ('fraud_type', 'fraud'))
    >>> words = Words.of("host", "is_incident")
    >>> words.entities, words.labels, words.negative, words.label_kinds
    ('hosts', 'incidents', 'normal', ('incident_type', 'incident'))
    """

    entity: str
    entities: str
    label: str | None = None
    labels: str | None = None
    #: what an event without the label is (a "legit" payment, a "normal" reading)
    negative: str = "normal"
    #: fields that may name the label's kind (``fraud_type``, ``incident``), the first present is used
    label_kinds: tuple[str, ...] = ()

    @classmethod
    def of(cls, key_field: str, label_field: str | None = None) -> Words:
        entity = key_field.removesuffix("_id").replace("_", " ")
        if label_field is None:
            return cls(entity, plural(entity))
        stem = label_field.removeprefix("is_").removeprefix("has_")
        label = stem.replace("_", " ")
        return cls(entity, plural(entity), label, plural(label), _MASS_NOUNS.get(label, "normal"), (f"{stem}_type", stem))
