"""Fixtures of the notifications tests: a real SMTP server (aiosmtpd) and a real HTTP receiver on loopback."""

from __future__ import annotations

import email
from email.message import EmailMessage
from email.policy import default as default_policy

import pytest
from aiosmtpd.controller import Controller

from conftest import free_port
from kotacerdas.db import make_sessionmaker


class MailServer:
    """An aiosmtpd server on a fixed loopback port that can be stopped and started again (the "mail server is
    down" story); `messages` are the emails it accepted, parsed."""

    def __init__(self, port: int, **controller_options) -> None:
        self.port = port
        self.messages: list[EmailMessage] = []
        self.envelopes: list = []
        self._options = controller_options
        self._controller: Controller | None = None

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.envelopes.append(envelope)
        self.messages.append(email.message_from_bytes(envelope.original_content, policy=default_policy))
        return "250 Message accepted for delivery"

    def start(self) -> None:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, **self._options)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture
def smtp_port() -> int:
    return free_port()


@pytest.fixture
def mail_server(smtp_port):
    """A running SMTP server; the test may stop and start it."""
    server = MailServer(smtp_port)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mail_settings(settings, smtp_port):
    """The test settings with the loopback mail server and loopback webhooks allowed."""
    return settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp_port,
            "smtp_timeout_seconds": 5,
            "mail_from": "Pemkab Musi Rawas <lapor@musirawaskab.go.id>",
            "webhook_allowed_hosts": ["127.0.0.1"],
        }
    )


@pytest.fixture
def session_factory(engine):
    return make_sessionmaker(engine)
