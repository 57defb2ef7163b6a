"""Webhook channels: a generic JSON POST, or a Slack-compatible message.

The body is the alert document as JSON (``format="json"``) or ``{"text",
"blocks"}`` for a Slack incoming webhook (``format="slack"``). Headers:

* ``Idempotency-Key``: the same for every attempt of one delivery; receivers
  deduplicate on it (delivery is at least once);
* ``X-Tocsin-Signature: sha256=<hex>``: HMAC-SHA256 of the exact body bytes
  with the key from the channel's ``secret_env``, when set. Verify with
  :func:`verify_signature` (or the same three lines in any language), comparing
  in constant time.

2xx is success; 408, 425, 429 and 5xx (and network errors) are retried;
other 4xx are permanent failures (a wrong URL or payload does not fix itself).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx

from tocsin.alerting.channels.base import Channel, DeliveryError, explanation_lines, summary, when

SIGNATURE_HEADER = "X-Tocsin-Signature"
RETRYABLE_STATUS = {408, 425, 429}


def sign(secret: bytes, body: bytes) -> str:
    """The signature header's value for ``body``.

    >>> sign(b"key", b'{"a":1}')
    'sha256=88a67f24bbcdaed0e6c997404bb79a743baf44c6bab2f4c27328e3009d22e342'
    """
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    """True if ``header`` is the HMAC-SHA256 signature of ``body`` under ``secret``."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)


def slack_message(alert: dict[str, Any]) -> dict[str, Any]:
    """A Slack incoming-webhook payload: ``text`` for notifications, ``blocks`` for the message."""
    text = summary(alert)
    facts = [
        f"*Entity:* `{alert['entity']}`",
        f"*Pattern:* {alert.get('pattern')}",
        f"*Anomalies:* {alert.get('count')}",
        f"*Score:* {alert.get('score_100', 0):.2f}",
        f"*First event:* {when(alert.get('window_start', alert.get('event_time')))}",
        f"*Last event:* {when(alert.get('last_event_time'))}",
    ]
    if alert.get("budget_cutoff") is not None:
        facts.append(f"*Budget cut-off:* {alert['budget_cutoff']:.6f}")
    why = "\n".join(f"• {line}" for line in explanation_lines(alert)) or "(no explanation)"
    return {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*"}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": fact} for fact in facts]},
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*Why:*\n{why}"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"alert `{alert['alert_key']}`"}]},
        ],
    }


class WebhookChannel(Channel):
    """POST alerts to ``url``; ``format`` "json" (the alert document) or "slack"."""

    kind = "webhook"

    def __init__(
        self,
        name: str,
        url: str,
        *,
        secret: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
        format: str = "json",
    ) -> None:
        super().__init__(name)
        if format not in ("json", "slack"):
            raise ValueError(f"format: {format!r} is not 'json' or 'slack'")
        self.url = url
        self.secret = secret
        self.headers = dict(headers or {})
        self.format = format
        self.client = httpx.Client(timeout=timeout, follow_redirects=False)

    def body(self, alert: dict[str, Any]) -> bytes:
        payload = slack_message(alert) if self.format == "slack" else alert
        return json.dumps(payload, separators=(",", ":"), default=str).encode()

    def send(self, alert: dict[str, Any], idempotency_key: str) -> None:
        body = self.body(alert)
        headers = {**self.headers, "Content-Type": "application/json", "Idempotency-Key": idempotency_key}
        if self.secret is not None:
            headers[SIGNATURE_HEADER] = sign(self.secret, body)
        try:
            response = self.client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as error:
            raise DeliveryError(f"{type(error).__name__}: {error}") from None
        status = response.status_code
        if 200 <= status < 300:
            return
        permanent = 400 <= status < 500 and status not in RETRYABLE_STATUS
        raise DeliveryError(f"HTTP {status}: {response.text[:200]}", permanent=permanent)

    def close(self) -> None:
        self.client.close()
