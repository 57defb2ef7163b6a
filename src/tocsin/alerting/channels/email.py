"""The email channel: one message per delivery over SMTP (plain, STARTTLS or SMTPS).

The ``Message-ID`` is derived from the idempotency key, so a retried delivery
carries the same id and mail systems (and people's filters) can drop the
duplicate. SMTP reply codes 5xx to the sender or recipients are permanent
failures; connection errors, timeouts and 4xx are retried.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from email.message import EmailMessage
from typing import Any

from tocsin.alerting.channels.base import Channel, DeliveryError, explanation_lines, summary, when


def message_id(idempotency_key: str, domain: str = "tocsin.alerts") -> str:
    """A stable Message-ID for an idempotency key.

    >>> message_id("tx/a/mail/open") == message_id("tx/a/mail/open") != message_id("tx/a/mail/resolve")
    True
    """
    return f"<{hashlib.sha1(idempotency_key.encode()).hexdigest()}@{domain}>"


def render(alert: dict[str, Any]) -> str:
    lines = [
        summary(alert),
        "",
        f"Entity:       {alert['entity']}",
        f"Pattern:      {alert.get('pattern')}",
        f"Severity:     {alert['severity']}",
        f"Anomalies:    {alert.get('count')}",
        f"Score:        {alert.get('score_100', 0):.2f} / 100",
        f"First event:  {when(alert.get('window_start', alert.get('event_time')))} ({alert.get('first_event_id')})",
        f"Last event:   {when(alert.get('last_event_time'))}",
        f"Status:       {alert.get('status')}",
    ]
    if alert.get("budget_cutoff") is not None:
        lines.append(f"Budget cut-off: {alert['budget_cutoff']:.6f} (score needed to open an alert)")
    lines += ["", "Why:"] + [f"  - {line}" for line in explanation_lines(alert) or ["(no explanation)"]]
    lines += ["", f"Alert key: {alert['alert_key']}"]
    return "\n".join(lines) + "\n"


class EmailChannel(Channel):
    kind = "email"

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        sender: str,
        to: list[str],
        *,
        starttls: bool = False,
        use_ssl: bool = False,
        ca_file: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        super().__init__(name)
        self.host, self.port, self.sender, self.to = host, port, sender, list(to)
        self.starttls, self.use_ssl = starttls, use_ssl
        self.ca_file = ca_file
        self.username, self.password = username, password
        self.timeout = timeout

    def message(self, alert: dict[str, Any], idempotency_key: str) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = summary(alert)
        message["From"] = self.sender
        message["To"] = ", ".join(self.to)
        message["Message-ID"] = message_id(idempotency_key)
        message["X-Tocsin-Alert-Key"] = alert["alert_key"]
        message["X-Tocsin-Idempotency-Key"] = idempotency_key
        message.set_content(render(alert))
        return message

    def send(self, alert: dict[str, Any], idempotency_key: str) -> None:
        message = self.message(alert, idempotency_key)
        context = ssl.create_default_context(cafile=self.ca_file) if (self.starttls or self.use_ssl) else None
        try:
            if self.use_ssl:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            with smtp:
                if self.starttls:
                    smtp.starttls(context=context)
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(message)
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as error:
            raise DeliveryError(f"{type(error).__name__}: {error}", permanent=_permanent(error)) from None
        except smtplib.SMTPResponseException as error:
            raise DeliveryError(f"SMTP {error.smtp_code}: {error.smtp_error!r}", permanent=500 <= error.smtp_code < 600) from None
        except (smtplib.SMTPException, OSError) as error:
            raise DeliveryError(f"{type(error).__name__}: {error}") from None


def _permanent(error: Exception) -> bool:
    if isinstance(error, smtplib.SMTPSenderRefused):
        return 500 <= error.smtp_code < 600
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(500 <= code < 600 for code, _ in error.recipients.values())
    return False
