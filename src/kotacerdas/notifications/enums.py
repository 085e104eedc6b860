"""Channels and delivery states of outgoing messages."""

from __future__ import annotations

from kotacerdas.enums import LabelledEnum


class OutboxChannel(LabelledEnum):
    """How an outgoing message travels."""

    EMAIL = ("email", "Surel", "Email", "#1e88e5")
    WEBHOOK = ("webhook", "Webhook", "Webhook", "#8e24aa")


class OutboxStatus(LabelledEnum):
    """Where an outgoing message is on its way out."""

    PENDING = ("pending", "Menunggu", "Pending", "#f9a825")
    SENDING = ("sending", "Sedang dikirim", "Sending", "#1e88e5")
    SENT = ("sent", "Terkirim", "Sent", "#43a047")
    FAILED = ("failed", "Gagal", "Failed", "#e53935")
