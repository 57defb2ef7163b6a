"""An anomaly's *pattern*: a fraud-agnostic signature of why it was flagged.

Alerts group one entity's anomalies that share a pattern, so the pattern must be
stable across the events of one incident and say something to a person. It is
built from the anomaly's explanation (the top contributing features), not from
any label, so it works for any pipeline:

* each explained feature maps to a **family**: the grouping prefix of a
  ``by:`` feature is kept (``merchant_id.count_1h`` -> ``merchant_id.rate``),
  then the name says what kind of evidence it is:

  - ``rate``: how often the key acts (``count_*``, ``velocity_*``,
    ``seconds_since_last``, window sums ``<field>_sum_*``);
  - ``<field>``: the value of a field against its baseline
    (``amount_zscore_30d``, ``amount_ratio_30d``, ``amount``, a series' ``cpu_surprise``);
  - ``new_<field>``: an unseen or rare category (``merchant_id_novel``,
    ``city_share``, ``_seen_count``, ``_distinct``);
  - otherwise the feature name without its trailing window (``_1h``, ``_30d``).

* an anomaly's **families** are those of its top explanation items (at most
  three); its **pattern** is the first (strongest) one, ``unexplained`` when
  the detector gave no explanation.

An anomaly joins an entity's open alert when the alert's pattern is one of the
anomaly's families (not only the first): the order of the top features of one
burst flips from event to event (rate first, then amount), and requiring the
same first family would split one incident into several alerts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

UNEXPLAINED = "unexplained"
_WINDOW_SUFFIX = re.compile(r"(_\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+$")
_RATE = re.compile(r"^(count|velocity)(_|$)|^seconds_since_last|_sum(_|$)")
_VALUE = re.compile(r"^(?P<field>.+?)_(zscore|ratio|mean|std|surprise)(_|$)")
_NOVELTY = re.compile(r"^(?P<field>.+?)_(novel|share|seen_count|distinct)$")


@lru_cache(maxsize=4096)  # a pipeline has a few dozen feature names; every anomaly asks for three
def feature_family(feature: str) -> str:
    """The family of one feature name.

    >>> [feature_family(f) for f in ("count_1m", "velocity_per_min_10m", "amount_zscore_30d",
    ...                              "merchant_id_novel", "merchant_id.count_1h", "amount")]
    ['rate', 'rate', 'amount', 'new_merchant_id', 'merchant_id.rate', 'amount']
    """
    prefix, _, name = feature.rpartition(".")
    if _RATE.search(name):
        family = "rate"
    elif match := _NOVELTY.match(name):
        family = f"new_{match.group('field')}"
    elif match := _VALUE.match(name):
        family = match.group("field")
    else:
        family = _WINDOW_SUFFIX.sub("", name) or name
    return f"{prefix}.{family}" if prefix else family


def families(explanation: Sequence[dict[str, Any]], top: int = 3) -> list[str]:
    """Distinct families of the top ``top`` explanation items, strongest first.

    >>> families([{"feature": "count_1m"}, {"feature": "velocity_per_min_10m"}, {"feature": "amount_ratio_30d"}])
    ['rate', 'amount']
    >>> families([])
    ['unexplained']
    """
    out: list[str] = []
    for item in list(explanation)[:top]:
        family = feature_family(str(item.get("feature", "")))
        if family and family not in out:
            out.append(family)
    return out or [UNEXPLAINED]
