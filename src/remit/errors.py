"""Domain errors. Each adapter maps them once: Graph JSON, a portal message, a CLI exit code."""

from __future__ import annotations


class DomainError(Exception):
    code = "generalException"

    def __init__(self, message: str, *, code: str | None = None, target: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.target = target


class NotFound(DomainError):
    """The object does not exist, or the actor may not see it (no existence leaks)."""

    code = "itemNotFound"


class Forbidden(DomainError):
    """The actor sees the object but may not do this to it."""

    code = "accessDenied"


class Conflict(DomainError):
    code = "conflict"


class Invalid(DomainError):
    code = "invalidRequest"


class Unauthenticated(DomainError):
    code = "unauthenticated"


class Busy(DomainError):
    """The database's writers were busy for longer than a writer may wait: nothing was begun,
    so nothing was changed, and the same call may simply be made again a moment later."""

    code = "serviceNotAvailable"

    def __init__(self, message: str, *, retry_after_seconds: int = 1) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds
