"""The AlertManager: anomalies in, grouped alerts (and the deliveries they owe) out.

Grouping, in event time only (never the wall clock), so a replay from a
checkpoint and a backtest of the same stream give the same alerts:

* An alert groups the anomalies of one **entity** and one **pattern** (see
  :mod:`tocsin.alerting.patterns`) that fall within ``window`` of its first
  anomaly, with no gap of ``quiet_period`` between them. Its key is
  ``{entity}:{pattern}:{first anomaly's event time, in ms}``: deterministic, so
  a replayed batch rewrites the same alert.
* An anomaly joins a live group of its entity whose pattern is among the
  anomaly's explanation families, or starts one with its first family. A group
  becomes an alert when one of its anomalies reaches ``min_severity`` and the
  :class:`~tocsin.alerting.budget.AlertBudget` admits it; until then it is a
  *candidate* that writes nothing. So the weaker anomalies at the start of an
  incident (``info`` ones while a burst ramps up) are counted by the alert it
  becomes, and the alert starts at the first of them.
* **Suppression of repeats**: a new alert of an (entity, pattern) whose previous
  alert had an anomaly within ``suppress_for`` is a repeat. It is stored and
  counted (``suppressed`` on its details) but routed nowhere, unless it is more
  severe than the alert it repeats. Repeats do not use the budget.
* **Mutes**: an anomaly matching a mute people set with a false-positive
  verdict (:mod:`tocsin.alerting.mutes`) joins and opens no alert; it is still
  stored and counted (``muted``).
* **Lifecycle**: alerts open as ``open``; people acknowledge or resolve them
  through the API; an alert whose last anomaly is ``quiet_period`` behind the
  event-time watermark resolves itself (``resolved_reason = "quiet"``).
* **Severity**: the highest severity of its anomalies (from the calibrated
  score), raised by the spec's rules (``min_count``, ``min_score``,
  ``patterns``).

Replay safety: the manager's state (open alerts, recent alerts for
suppression, the budget, the watermark) is part of the runner's checkpoint
(:meth:`state_dict`), and every write sets absolute values (``count`` is the
group's count, not an increment): after a crash the runner restores the state
saved with the position it resumes from, the replayed anomalies rebuild the
same groups, and the rewrites converge to what an uninterrupted run writes.

The manager decides; it does not write. :meth:`observe` returns
:class:`AlertChanges`, which :func:`tocsin.alerting.outbox.write_changes` writes
in the caller's store transaction. ``AlertChanges.log`` lists the same changes
as a feed (opened, updated, resolved, each with the anomaly that caused it) for
drivers that publish them, like the Kafka worker's alerts topic.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from tocsin.alerting.budget import AlertBudget
from tocsin.alerting.mutes import MuteBook
from tocsin.alerting.patterns import UNEXPLAINED, families
from tocsin.spec.alerting import AlertingSpec, Route
from tocsin.vocabulary import SEVERITIES, SEVERITY_ORDER

#: an alert grouped by another field keeps this many of the entities it touched (and counts them all)
MAX_MEMBERS = 100
#: the state's JSON: msgspec writes dataclasses as objects ~10x faster than json.dumps(asdict(...))
_encode_state = msgspec.json.Encoder().encode


@dataclass
class Group:
    """One alert while it can still change (open, or waiting out its quiet period)."""

    key: str
    entity: str
    pattern: str
    window_start: float
    window_end: float
    last_time: float
    first_event_id: str
    count: int
    max_score: float
    base_severity: int
    severity: int
    explanation: list[dict[str, Any]]
    attributes: dict[str, Any]
    budget_cutoff: float | None
    suppressed: bool
    #: severity of the alert this one repeats (a repeat that exceeds it is delivered after all)
    repeat_of_severity: int = -1
    rule: int | None = None
    channels: list[str] = field(default_factory=list)
    #: False while only a candidate: its anomalies are below ``min_severity`` or the budget refused it
    is_alert: bool = False
    #: event id of its latest anomaly in stream order
    last_event_id: str = ""
    #: True once a change of this alert was reported ("opened"); later ones are "updated"
    reported: bool = False
    #: with ``alerting.group_by``: the distinct event entities (the users an IP tried) grouped here, the first
    #: MAX_MEMBERS of them, and how many there were
    members: list[str] = field(default_factory=list)
    member_count: int = 0


@dataclass
class AlertChange:
    """One alert's change in one batch, as a feed reports it."""

    #: "opened" (the alert's first change), "updated" (new anomalies: count, severity…) or "resolved"
    kind: str
    #: the alert row as written (``status`` "resolved" for a resolution)
    alert: dict[str, Any]
    #: its details row
    detail: dict[str, Any]
    #: index, in the anomalies passed to :meth:`AlertManager.observe`, of the alert's latest
    #: anomaly among them: the one that caused the change (None for "resolved")
    anomaly: int | None
    #: event id of the alert's latest anomaly (the one at ``anomaly``, if any)
    event_id: str


@dataclass
class AlertChanges:
    """What one batch changed: alert rows to upsert, alerts to resolve, deliveries to enqueue."""

    alerts: list[dict[str, Any]] = field(default_factory=list)
    details: list[dict[str, Any]] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    #: the same changes, one entry per alert and kind, in the order they happened
    log: list[AlertChange] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.alerts or self.resolved or self.deliveries)


class AlertManager:
    """Turns a pipeline's anomaly records into grouped alerts; state is checkpointed with the pipeline.

    >>> from tocsin.spec.alerting import AlertingSpec
    >>> manager = AlertManager(AlertingSpec(window="1h"), pipeline="tx")
    >>> burst = [{"event_id": f"e{i}", "entity": "card7", "event_time": 1000.0 + i, "score": 0.9995,
    ...           "severity": "warning", "explanation": [{"feature": "count_1m"}], "fields": {}} for i in range(500)]
    >>> changes = manager.observe(burst, watermark=1499.0)
    >>> [(a["alert_key"], a["count"]) for a in changes.alerts]
    [('card7:rate:1000000', 500)]
    """

    def __init__(
        self,
        spec: AlertingSpec,
        pipeline: str,
        severity_cutoffs: tuple[float, float] = (0.999, 0.9999),
    ) -> None:
        self.spec = spec
        self.pipeline = pipeline
        self.severity_cutoffs = severity_cutoffs
        self._min_severity = SEVERITY_ORDER[spec.min_severity]
        base_cutoff = 0.0 if self._min_severity == 0 else severity_cutoffs[self._min_severity - 1]
        budget = spec.budget
        self.budget = AlertBudget(budget.per_day, base_cutoff, budget.adapt_every, budget.max_cutoff)
        #: entity -> its groups that are open or waiting out their quiet period, oldest first
        self.groups: dict[str, list[Group]] = {}
        #: (entity, pattern) -> (last anomaly time, severity) of resolved alerts, for suppression
        self.recent: dict[tuple[str, str], tuple[float, int]] = {}
        self.watermark = -np.inf
        self.opened = 0
        self.suppressed = 0
        #: what people said is normal (the driver keeps it in step with the store; not checkpointed)
        self.mutes = MuteBook()
        #: anomalies a mute kept out of every alert
        self.muted = 0

    # --- deciding -----------------------------------------------------------------

    def observe(self, anomalies: Iterable[Mapping[str, Any]], watermark: float | None = None,
                ended: Iterable[tuple[str, str]] = ()) -> AlertChanges:
        """Fold a batch's anomaly records (in stream order) into the alerts; ``watermark``: the stream's
        event-time clock after the batch (normal events move it too; anomalies alone never do, so one
        event with a wild time cannot resolve every alert), which drives auto-resolve. ``ended``:
        (entity, pattern) pairs whose condition is over (a silent host reported again): their alerts
        resolve now instead of after the quiet period."""
        touched: dict[str, tuple[Group, int]] = {}  # key -> (group, index of its latest anomaly here)
        for index, anomaly in enumerate(anomalies):
            group = self._fold(anomaly)
            if group is not None:
                touched[group.key] = (group, index)
        if watermark is not None:
            self.watermark = max(self.watermark, float(watermark))
        self._forget_stale_candidates()
        changes = AlertChanges()
        for group, index in touched.values():
            self._refresh(group, changes, index)
        self._resolve_quiet(changes, set(ended))
        return changes

    def _fold(self, anomaly: Mapping[str, Any]) -> Group | None:
        """Add one anomaly to its group (joining or starting one); the group if it is an alert now."""
        t = float(anomaly["event_time"])
        entity = str(anomaly["entity"])
        score = float(anomaly["score"])
        severity = SEVERITY_ORDER.get(anomaly.get("severity") or "info", 0)
        fams = families(anomaly.get("explanation") or [])
        if self.mutes.by_entity and self.mutes.match(entity, fams, t) is not None:
            self.muted += 1  # stored and counted by the caller like any anomaly; it opens and joins no alert
            return None
        live = [g for g in self.groups.get(entity, ()) if t < g.window_end and t - g.last_time < self.spec.quiet_period]
        group = next((g for g in live if g.pattern in fams), None)
        if group is None and fams == [UNEXPLAINED] and live:
            group = live[-1]
        if group is None:
            group = Group(
                key=f"{entity}:{fams[0]}:{int(round(t * 1000))}",
                entity=entity,
                pattern=fams[0],
                window_start=t,
                window_end=t + self.spec.window,
                last_time=t,
                first_event_id=str(anomaly["event_id"]),
                count=0,
                max_score=score,
                base_severity=severity,
                severity=severity,
                explanation=list(anomaly.get("explanation") or []),
                attributes=dict(anomaly.get("fields") or {}),
                budget_cutoff=None,
                suppressed=False,
            )
            self.groups.setdefault(entity, []).append(group)
        group.count += 1
        member = anomaly.get("member")
        if member is not None and member not in group.members:
            group.member_count += 1
            if len(group.members) < MAX_MEMBERS:
                group.members.append(member)
        group.last_event_id = str(anomaly["event_id"])
        group.last_time = max(group.last_time, t)
        group.max_score = max(group.max_score, score)
        group.base_severity = max(group.base_severity, severity)
        if not group.is_alert and severity >= self._min_severity:
            self._open(group, t, score, severity)
        return group if group.is_alert else None

    def _open(self, group: Group, t: float, score: float, severity: int) -> None:
        """Make a group an alert when an anomaly strong enough arrives and the budget admits it.

        Weaker anomalies before it (``info`` ones as a burst ramps up) are already in the
        group: the alert counts them and starts at the first of them."""
        repeat_of = self._repeat_of(group.entity, group.pattern, group.window_start, exclude=group)
        suppressed = repeat_of is not None and severity <= repeat_of
        if not suppressed and not self.budget.admit(t, score):
            return  # stays a candidate: a later, stronger anomaly of the same incident may open it
        group.is_alert = True
        group.suppressed = suppressed
        group.repeat_of_severity = -1 if repeat_of is None else repeat_of
        group.budget_cutoff = self.budget.cutoff if self.budget.per_day is not None else None
        self.opened += 1
        self.suppressed += suppressed

    def _forget_stale_candidates(self) -> None:
        """Candidates past their window can never open; drop them so state stays small."""
        for entity in list(self.groups):
            keep = [g for g in self.groups[entity] if g.is_alert or self.watermark < g.window_end]
            if keep:
                self.groups[entity] = keep
            else:
                del self.groups[entity]

    def _repeat_of(self, entity: str, pattern: str, t: float, exclude: Group | None = None) -> int | None:
        """The severity of a recent alert of (entity, pattern) that this one would repeat, if any."""
        severities = [
            g.severity for g in self.groups.get(entity, ())
            if g is not exclude and g.is_alert and g.pattern == pattern and t - g.last_time < self.spec.suppress_for
        ]
        recent = self.recent.get((entity, pattern))
        if recent is not None and t - recent[0] < self.spec.suppress_for:
            severities.append(recent[1])
        return max(severities) if severities else None

    def _severity(self, group: Group) -> tuple[int, int | None]:
        severity, rule_index = group.base_severity, None
        for i, rule in enumerate(self.spec.rules):
            if rule.min_count is not None and group.count < rule.min_count:
                continue
            if rule.min_score is not None and group.max_score < rule.min_score:
                continue
            if rule.patterns is not None and group.pattern not in rule.patterns:
                continue
            if SEVERITY_ORDER[rule.severity] > severity:
                severity, rule_index = SEVERITY_ORDER[rule.severity], i
        return severity, rule_index

    def route(self, group: Group) -> list[str]:
        """Channel names of every route whose match the alert meets, in spec order, without duplicates."""
        names: list[str] = []
        for route in self.spec.routes:
            if self._matches(route, group):
                names.extend(n for n in route.channels if n not in names)
        return names

    def _matches(self, route: Route, group: Group) -> bool:
        match = route.match
        if match.severity is not None and SEVERITIES[group.severity] not in match.severity:
            return False
        if match.pipeline is not None and self.pipeline not in match.pipeline:
            return False
        if match.patterns is not None and group.pattern not in match.patterns:
            return False
        if match.entity is not None and group.entity not in match.entity:
            return False
        for name, accepted in match.attributes.items():
            if str(group.attributes.get(name)) not in accepted:
                return False
        return True

    def _refresh(self, group: Group, changes: AlertChanges, anomaly: int) -> None:
        group.severity, group.rule = self._severity(group)
        if group.suppressed and group.severity > group.repeat_of_severity:
            group.suppressed = False  # a repeat that got worse than what it repeats is news again
        if not group.suppressed:
            for channel in self.route(group):
                if channel not in group.channels:
                    group.channels.append(channel)
                changes.deliveries.append(self._delivery(group, channel, "open"))
        alert, detail = self._alert_row(group), self._detail_row(group)
        changes.alerts.append(alert)
        changes.details.append(detail)
        changes.log.append(AlertChange("updated" if group.reported else "opened", alert, detail, anomaly, group.last_event_id))
        group.reported = True

    def _resolve_quiet(self, changes: AlertChanges, ended: set[tuple[str, str]] = frozenset()) -> None:
        for entity in list(self.groups):
            keep = []
            for group in self.groups[entity]:
                if self.watermark - group.last_time >= self.spec.quiet_period or (entity, group.pattern) in ended:
                    if not group.is_alert:
                        continue  # a candidate that never became an alert is simply forgotten
                    changes.resolved.append(group.key)
                    changes.log.append(AlertChange("resolved", {**self._alert_row(group), "status": "resolved"},
                                                   self._detail_row(group), None, group.last_event_id))
                    if self.spec.notify_resolved and not group.suppressed:
                        changes.deliveries.extend(self._delivery(group, c, "resolve") for c in group.channels)
                    previous = self.recent.get((entity, group.pattern))
                    if previous is None or previous[0] <= group.last_time:
                        self.recent[(entity, group.pattern)] = (group.last_time, group.severity)
                else:
                    keep.append(group)
            if keep:
                self.groups[entity] = keep
            else:
                del self.groups[entity]
        horizon = self.watermark - self.spec.suppress_for
        self.recent = {k: v for k, v in self.recent.items() if v[0] > horizon}

    # --- rows -------------------------------------------------------------------------

    def _alert_row(self, group: Group) -> dict[str, Any]:
        return {
            "alert_key": group.key,
            "entity": group.entity,
            "severity": SEVERITIES[group.severity],
            "status": "open",
            "first_event_id": group.first_event_id,
            "event_time": group.window_start,
            "score": group.max_score,
            "count": group.count,
            "explanation": group.explanation,
        }

    def _detail_row(self, group: Group) -> dict[str, Any]:
        return {
            "alert_key": group.key,
            "pattern": group.pattern,
            "window_start": group.window_start,
            "window_end": group.window_end,
            "last_event_time": group.last_time,
            "suppressed": group.suppressed,
            "budget_cutoff": group.budget_cutoff,
            "rule": group.rule,
            "attributes": group.attributes if not group.member_count else {
                **group.attributes, "members": list(group.members), "member_count": group.member_count},
            "channels": list(group.channels),
        }

    def _delivery(self, group: Group, channel: str, notification: str) -> dict[str, Any]:
        return {
            "alert_key": group.key,
            "channel": channel,
            "notification": notification,
            "idempotency_key": idempotency_key(self.pipeline, group.key, channel, notification),
        }

    # --- state ------------------------------------------------------------------------

    def state_dict(self) -> dict[str, np.ndarray]:
        """All state as one JSON string array (it is small: the alerts still open), a copy: later
        batches do not change it (the Kafka worker writes checkpoints in a background thread)."""
        state = {
            "groups": [g for groups in self.groups.values() for g in groups],  # msgspec encodes dataclasses
            "recent": [[e, p, t, s] for (e, p), (t, s) in self.recent.items()],
            "budget": self.budget.state_dict(),
            "watermark": self.watermark if np.isfinite(self.watermark) else None,
            "opened": self.opened,
            "suppressed": self.suppressed,
            "muted": self.muted,
        }
        return {"state": np.array(_encode_state(state).decode())}

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        data = json.loads(str(state["state"]))
        self.groups = {}
        for item in data["groups"]:
            group = Group(**item)
            self.groups.setdefault(group.entity, []).append(group)
        self.recent = {(e, p): (float(t), int(s)) for e, p, t, s in data["recent"]}
        self.budget.load_state_dict(data["budget"])
        self.watermark = -np.inf if data["watermark"] is None else float(data["watermark"])
        self.opened = int(data["opened"])
        self.suppressed = int(data["suppressed"])
        self.muted = int(data.get("muted", 0))  # checkpoints before mutes existed have none

    @property
    def open_alerts(self) -> int:
        """Alerts still open or waiting out their quiet period (candidates not counted)."""
        return sum(g.is_alert for groups in self.groups.values() for g in groups)


def idempotency_key(pipeline: str, alert_key: str, channel: str, notification: str) -> str:
    """The key a receiver deduplicates on: the same alert, channel and notification always give the same key.

    >>> idempotency_key("tx", "card7:rate:1000000", "hook", "open")
    'tx/card7:rate:1000000/hook/open'
    """
    return f"{pipeline}/{alert_key}/{channel}/{notification}"
