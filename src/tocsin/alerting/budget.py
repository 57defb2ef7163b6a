"""The alert budget: at most N new alerts per event-time day, by raising the bar to open one.

An :class:`AlertBudget` sees every *candidate* (an anomaly that would open a
new alert) in event order. It keeps the day's count of alerts opened and a
score **cut-off**: a candidate opens an alert only if its calibrated score is
at least the cut-off and the day still has budget left.

Every ``adapt_every`` seconds of event time the budget projects the day's total
from its pace so far (``opened / elapsed share of the day``). Ahead of budget,
the tail above the cut-off halves (0.998 -> 0.999 -> 0.9995…, capped at
``max_cutoff``); under 80 % of the budget, it doubles back towards the base (the
pipeline's lowest alerting severity). The hard cap still holds inside a burst
that outruns the adaptation. Days are UTC days of event time, so a replay or a
backtest of the same stream makes the same decisions.

Costs nothing per anomaly beyond a few comparisons; the state is six numbers.
"""

from __future__ import annotations

import math

DAY = 86_400.0
#: the cut-off relaxes while the projected day is under this share of the budget
RELAX_BELOW = 0.8


class AlertBudget:
    """Adapts the score needed to open an alert so that about ``per_day`` open per day.

    >>> budget = AlertBudget(per_day=2, base_cutoff=0.99, adapt_every=3600)
    >>> [budget.admit(t, 0.9999) for t in (10.0, 20.0, 30.0)]  # the third would exceed the day's budget
    [True, True, False]
    >>> budget.cutoff > 0.99  # two alerts within the first hour project far past 2 a day
    True
    >>> budget.admit(DAY + 10.0, 0.9999), budget.opened_today  # a new day, a fresh count
    (True, 1)
    """

    def __init__(self, per_day: int | None, base_cutoff: float, adapt_every: float = 900.0, max_cutoff: float = 0.999999) -> None:
        self.per_day = per_day
        self.base_cutoff = float(base_cutoff)
        self.adapt_every = float(adapt_every)
        self.max_cutoff = float(max_cutoff)
        self.cutoff = float(base_cutoff)
        self.day = -1
        self.opened_today = 0
        self.rejected_today = 0
        self._last_adapt = -math.inf

    def _roll(self, event_time: float) -> None:
        day = int(event_time // DAY)
        if day > self.day:
            self.day, self.opened_today, self.rejected_today = day, 0, 0

    def _adapt(self, event_time: float) -> None:
        if self.per_day is None or event_time - self._last_adapt < self.adapt_every:
            return
        self._last_adapt = event_time
        elapsed = max(event_time - self.day * DAY, self.adapt_every) / DAY
        pace = self.opened_today / elapsed
        tail, base_tail, min_tail = 1.0 - self.cutoff, 1.0 - self.base_cutoff, 1.0 - self.max_cutoff
        if pace > self.per_day:
            tail = max(tail / 2.0, min_tail)
        elif pace < self.per_day * RELAX_BELOW:
            tail = min(tail * 2.0, base_tail)
        self.cutoff = 1.0 - tail

    def admit(self, event_time: float, score: float) -> bool:
        """Whether a candidate at ``event_time`` with calibrated ``score`` may open an alert (and count it)."""
        if self.per_day is None:
            return True
        self._roll(event_time)
        self._adapt(event_time)
        if self.opened_today >= self.per_day or score < self.cutoff:
            self.rejected_today += 1
            return False
        self.opened_today += 1
        # Re-check the pace right after the alert that may break it, rather than a full interval later.
        if self.opened_today / (max(event_time - self.day * DAY, self.adapt_every) / DAY) > self.per_day:
            self._last_adapt = -math.inf
        return True

    # --- state ----------------------------------------------------------------------

    def state_dict(self) -> dict[str, float]:
        return {
            "cutoff": self.cutoff,
            "day": self.day,
            "opened_today": self.opened_today,
            "rejected_today": self.rejected_today,
            "last_adapt": self._last_adapt if math.isfinite(self._last_adapt) else None,
        }

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.cutoff = float(state["cutoff"])
        self.day = int(state["day"])
        self.opened_today = int(state["opened_today"])
        self.rejected_today = int(state["rejected_today"])
        last = state["last_adapt"]
        self._last_adapt = -math.inf if last is None else float(last)
