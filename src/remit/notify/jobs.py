"""The notification job kinds. The runner imports this module to register them.

Both are ``io`` kinds: they only read (the user, the extension) and then talk to the network, so
the runner runs them outside a write transaction and a slow peer never holds SQLite's write lock.
"""

from __future__ import annotations

from typing import Any

from remit.context import Ctx
from remit.jobs.registry import job
from remit.notify import email, webhooks


@job(
    email.EMAIL_JOB,
    max_attempts=email.EMAIL_ATTEMPTS,
    io=True,
    batch=email.reuse_connections,
)
def send_email(ctx: Ctx, payload: dict[str, Any]) -> None:
    email.deliver(ctx, payload)


@job(webhooks.WEBHOOK_JOB, max_attempts=webhooks.WEBHOOK_ATTEMPTS, io=True)
def call_webhook(ctx: Ctx, payload: dict[str, Any]) -> None:
    webhooks.deliver(ctx, payload)
