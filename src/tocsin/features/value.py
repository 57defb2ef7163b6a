"""A numeric field as a feature, as is or log-scaled.

``{field}`` passes the value through; with ``log=True`` the column is
``log_{field}`` = ``sign(x) * log1p(|x|)``, which keeps zero at zero and the
sign, and turns heavy-tailed amounts into something distance-based detectors
can use. Stateless: it never depends on other events.
"""

from __future__ import annotations

import numpy as np

from tocsin.batch import EventBatch
from tocsin.features.base import BatchKeys, FeatureOperator, FeatureOutput, format_number


class ValueFeature(FeatureOperator):
    """The numeric ``field``, or ``sign(x) * log1p(|x|)`` when ``log`` is true.

    >>> from tocsin.batch import EventBatch
    >>> batch = EventBatch(
    ...     ids=np.array(["e1", "e2", "e3"], dtype=object),
    ...     keys=np.array(["c1", "c1", "c1"], dtype=object),
    ...     times=np.array([0.0, 1.0, 2.0]),
    ...     numeric={"amount": np.array([0.0, 99.0, -99.0])},
    ... )
    >>> op = ValueFeature("amount", log=True)
    >>> out = op.transform_update(batch, BatchKeys(by={}))
    >>> op.names, np.round(out.columns["log_amount"], 3).tolist()
    (['log_amount'], [0.0, 4.605, -4.605])
    >>> op.describe("log_amount", 1, batch, out)
    'amount 99'
    """

    def __init__(self, field: str, log: bool = False) -> None:
        self.field = field
        self.log = log
        self._name = f"log_{field}" if log else field
        self.names = [self._name]

    def transform_update(self, batch: EventBatch, keys: BatchKeys) -> FeatureOutput:
        x = np.asarray(batch.numeric[self.field], dtype=np.float64)
        column = np.sign(x) * np.log1p(np.abs(x)) if self.log else x.copy()
        return FeatureOutput(columns={self._name: column})

    def key_state(self, key_id: int) -> dict[str, float]:
        return {}

    def describe(self, name: str, row: int, batch: EventBatch, output: FeatureOutput) -> str:
        return f"{self.field} {format_number(float(batch.numeric[self.field][row]), 6)}"

    def state_dict(self) -> dict[str, np.ndarray]:
        return {}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        pass
