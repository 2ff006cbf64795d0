"""What the notification jobs need to know about the outside world, set once per process.

Job handlers receive only a ``Ctx`` and their payload, so the SMTP server, the outbox folder,
the portal's address and the webhook timeout come from here: the workers (``remit worker`` and
the one inside ``remit serve``) call ``configure(settings)`` at start-up, and tests point it at
their own SMTP server (and, for
STARTTLS against a self-signed certificate, their own TLS context). A process that never calls
it reads ``Settings()`` from the environment on first use, as ``remit serve`` itself does.
"""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass

from remit.settings import Settings


@dataclass(frozen=True)
class NotifyConfig:
    settings: Settings
    # None: the system's trust store (ssl.create_default_context()).
    tls_context: ssl.SSLContext | None = None

    def ssl_context(self) -> ssl.SSLContext:
        return self.tls_context or ssl.create_default_context()


_lock = threading.Lock()
_current: NotifyConfig | None = None


def configure(settings: Settings | None, *, tls_context: ssl.SSLContext | None = None) -> None:
    """Use ``settings`` for every notification sent by this process (None: back to the default)."""
    global _current  # noqa: PLW0603 - one configuration per process, set at start-up
    with _lock:
        _current = None if settings is None else NotifyConfig(settings, tls_context)


def current() -> NotifyConfig:
    global _current  # noqa: PLW0603 - filled from the environment on first use
    with _lock:
        if _current is None:
            _current = NotifyConfig(Settings())
        return _current
