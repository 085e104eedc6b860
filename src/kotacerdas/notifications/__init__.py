"""Notifications: one outbox for outgoing email and signed webhooks, delivered by the worker with retries."""
