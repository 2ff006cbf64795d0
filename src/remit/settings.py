"""Settings from the environment (prefix ``REMIT_``), read once at start-up."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str) -> tuple[Network, ...]:
    """``"10.0.0.0/8, 127.0.0.1/32"`` as networks; ValueError names a bad entry."""
    found: list[Network] = []
    for part in text.split(","):
        entry = part.strip()
        if not entry:
            continue
        try:
            found.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(
                f"{entry!r} is not a network in CIDR form (such as 10.0.0.0/8)"
            ) from None
    return tuple(found)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REMIT_", extra="ignore")

    data_dir: Path = Field(default=Path("data"), description="keys and the SQLite file live here")
    database_url: str = Field(default="", description="empty = SQLite file in data_dir")
    host: str = "127.0.0.1"
    port: int = 8000
    # Absolute base used in @odata.nextLink / @odata.id when set; otherwise taken from the request.
    public_base_url: str = ""
    page_size: int = Field(default=100, ge=1, le=1000)

    # Sign-in: remit signs its own tokens unless an external OIDC issuer is configured.
    token_issuer: str = "remit"  # noqa: S105 - an issuer name, not a secret
    token_audience: str = "remit-api"  # noqa: S105 - an audience, not a secret
    token_ttl_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    oidc_issuer: str = ""
    oidc_audience: str = ""
    oidc_jwks_url: str = ""
    oidc_algorithms: str = "RS256"
    # The claim that names the remit user: "upn" / "preferred_username" / "oid"/"sub" (object id).
    oidc_user_claim: str = "preferred_username"
    # Upper bounds on a token's life (issue #11): a remit-issued token whose exp - iat exceeds
    # the first is refused; an external token older (from its iat) than the second is refused.
    token_max_lifetime_seconds: int = Field(default=24 * 3600, ge=60, le=30 * 24 * 3600)
    oidc_max_token_age_seconds: int = Field(default=24 * 3600, ge=60, le=30 * 24 * 3600)

    # The HTTP edge (api/edge.py): failed sign-ins and bad tokens per client address, and how
    # much of a request's head uvicorn reads.
    auth_failures_per_window: int = Field(default=30, ge=1, le=100_000)
    auth_failure_window_seconds: float = Field(default=60.0, gt=0, le=3600)
    max_header_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    max_header_count: int = Field(default=100, ge=10, le=1000)

    log_level: str = "info"

    # On SQLite, how long a write waits for its turn among the process's writers (and, as
    # SQLite's busy timeout, for another process's writer) before it is refused as busy:
    # 503 + Retry-After from the API, exit 75 from the CLI; nothing is changed (decision 0029).
    write_wait_seconds: float = Field(default=5.0, gt=0, le=300)

    # Jobs: ``remit serve`` runs one worker in-process unless told not to; ``remit worker`` more.
    worker_in_process: bool = True
    worker_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    worker_batch: int = Field(default=20, ge=1, le=1000)
    worker_lease_seconds: int = Field(default=300, ge=5, le=24 * 3600)

    # Email over SMTP. With no host, messages are written to data_dir/outbox/ as .eml files.
    smtp_host: str = ""
    smtp_port: int = Field(default=25, ge=1, le=65535)
    # "none", "starttls" or "tls" (implicit TLS, usually port 465)
    smtp_security: str = "none"
    smtp_username: str = ""
    smtp_password: str = Field(default="", repr=False)
    smtp_sender: str = "remit <no-reply@remit.invalid>"
    smtp_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    # Where approvers and requestors are sent from emails ("<portal>/approvals/{id}").
    portal_base_url: str = ""

    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    # Webhooks reach public addresses only, plus these comma-separated CIDRs (notify/egress.py).
    webhook_allowed_networks: str = ""

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        parse_networks(value)  # a bad entry stops start-up with its name
        return value

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'remit.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url().startswith("sqlite")
