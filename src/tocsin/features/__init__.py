"""Streaming feature operators over per-key state in dense arrays.

Each event's features come from the state built by strictly earlier events of
its key, in arrival order (earlier rows of the same batch included); then the
event is folded in. Kernels (:mod:`tocsin.features.kernels`) loop over rows
sequentially with state indexed by interned key id, so results do not depend
on where the stream is cut into batches.
"""

from tocsin.features.base import BatchKeys, FeatureOperator, FeatureOutput
from tocsin.features.decayed import DecayedStats
from tocsin.features.featureset import FeatureFrame, FeatureSet
from tocsin.features.keys import KeyIndex
from tocsin.features.novelty import Novelty
from tocsin.features.recency import Recency
from tocsin.features.value import ValueFeature
from tocsin.features.velocity import Velocity
from tocsin.features.windows import WindowCounter

__all__ = [
    "BatchKeys",
    "DecayedStats",
    "FeatureFrame",
    "FeatureOperator",
    "FeatureOutput",
    "FeatureSet",
    "KeyIndex",
    "Novelty",
    "Recency",
    "ValueFeature",
    "Velocity",
    "WindowCounter",
]
