"""The rows a detector is (re)fitted on: the most recent events' feature rows.

Per-entity features mature as a stream runs (a card's decayed mean means little
after two purchases and a lot after twenty), so a detector fitted once on the
first events learns an immature picture. The pipeline therefore keeps the last
``capacity`` feature rows and refits on them every ``refit_every`` events.
"""

from __future__ import annotations

import numpy as np


class TrainingWindow:
    """A fixed-size ring of the most recent feature rows.

    >>> window = TrainingWindow(capacity=3, n_features=1)
    >>> window.extend(np.array([[1.0], [2.0]])); window.extend(np.array([[3.0], [4.0]]))
    >>> window.rows().ravel().tolist()
    [2.0, 3.0, 4.0]
    """

    def __init__(self, capacity: int, n_features: int) -> None:
        self.capacity = int(capacity)
        self._rows = np.empty((self.capacity, n_features), dtype=np.float64)
        self._size = 0
        self._next = 0

    def __len__(self) -> int:
        return self._size

    def extend(self, X: np.ndarray) -> None:
        """Append rows, dropping the oldest beyond capacity."""
        if len(X) >= self.capacity:
            self._rows[:] = X[len(X) - self.capacity :]
            self._size, self._next = self.capacity, 0
            return
        end = self._next + len(X)
        if end <= self.capacity:
            self._rows[self._next : end] = X
        else:
            split = self.capacity - self._next
            self._rows[self._next :] = X[:split]
            self._rows[: end - self.capacity] = X[split:]
        self._next = end % self.capacity
        self._size = min(self.capacity, self._size + len(X))

    def rows(self) -> np.ndarray:
        """The held rows, oldest first (a copy)."""
        if self._size < self.capacity:
            return self._rows[: self._size].copy()
        return np.concatenate([self._rows[self._next :], self._rows[: self._next]])

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"rows": self.rows()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self._size, self._next = 0, 0
        self.extend(np.asarray(state["rows"], dtype=np.float64).reshape(-1, self._rows.shape[1]))
