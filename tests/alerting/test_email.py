"""Tests for src/tocsin/alerting/channels/email.py against a real SMTP server (aiosmtpd), plain and STARTTLS."""

from __future__ import annotations

import ssl
import subprocess

import pytest

aiosmtpd = pytest.importorskip("aiosmtpd")
from aiosmtpd.controller import Controller  # noqa: E402
from aiosmtpd.smtp import AuthResult  # noqa: E402

from tocsin.alerting.channels.email import message_id  # noqa: E402
from tocsin.spec.alerting import AlertingSpec  # noqa: E402
from tocsin.alerting.dispatcher import Dispatcher  # noqa: E402
from tocsin.alerting.manager import AlertManager  # noqa: E402
from tocsin.alerting.outbox import delivery_rows  # noqa: E402
from tocsin.alerting.tables import ensure_tables  # noqa: E402
from tocsin.store.sql import Store  # noqa: E402

from tests.alerting.helpers import T0, burst, write  # noqa: E402
from tests.alerting.receivers import SmtpSink  # noqa: E402
from tests.conftest import free_port  # noqa: E402


@pytest.fixture
def store(tmp_path):
    with Store(f"sqlite:///{tmp_path / 'store.db'}") as s:
        ensure_tables(s.engine)
        yield s


def email_spec(port: int, **channel) -> AlertingSpec:
    return AlertingSpec.model_validate({
        "channels": {"mail": {"kind": "email", "host": "127.0.0.1", "port": port, "sender": "tocsin@example.test",
                              "to": ["fraud@example.test", "oncall@example.test"], "timeout": 5, **channel}},
        "routes": [{"match": {"severity": ["warning"]}, "channels": ["mail"]}],
        "retry": {"initial": 0.05, "max_delay": 0.2},
    })


def test_warnings_are_mailed_with_the_idempotency_key_as_message_id(store) -> None:
    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        spec = email_spec(controller.port)
        write(store, AlertManager(spec, "tx"), burst("card7", 40, T0))
        assert Dispatcher(store, spec).drain(timeout=10)
    finally:
        controller.stop()
    (sender, recipients, message), = sink.messages
    assert sender == "tocsin@example.test" and recipients == ["fraud@example.test", "oncall@example.test"]
    (row,) = delivery_rows(store, "tx")
    assert message["Message-ID"] == message_id(row["idempotency_key"])
    assert message["Subject"].startswith("[warning] tx: card7 — rate, 40 anomalies")
    assert "Anomalies:    40" in message.get_content()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return cert, key


def test_starttls_with_login_and_a_password_from_the_environment(store, certificate, monkeypatch) -> None:
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.login == b"tocsin" and auth_data.password == b"s3cret")

    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port(), tls_context=context, require_starttls=True,
                            authenticator=authenticator, auth_require_tls=True)
    controller.start()
    monkeypatch.setenv("TOCSIN_TEST_SMTP_PASSWORD", "s3cret")
    try:
        spec = email_spec(controller.port, starttls=True, ca_file=str(cert), username="tocsin", password_env="TOCSIN_TEST_SMTP_PASSWORD")
        write(store, AlertManager(spec, "tx"), burst("card9", 3, T0))
        assert Dispatcher(store, spec).drain(timeout=10)
    finally:
        controller.stop()
    assert logins == [(b"tocsin", b"s3cret")] and len(sink.messages) == 1


def test_an_smtp_outage_is_retried(store) -> None:
    port = free_port()
    spec = email_spec(port)
    write(store, AlertManager(spec, "tx"), burst("card7", 2, T0))
    dispatcher = Dispatcher(store, spec)
    dispatcher.run_once()
    (row,) = delivery_rows(store, "tx")
    assert row["status"] == "pending" and row["attempts"] == 1 and row["last_error"]
    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        assert dispatcher.drain(timeout=10)
    finally:
        controller.stop()
    assert len(sink.messages) == 1
