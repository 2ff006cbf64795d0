"""Custom extensions' webhook secrets at rest: sealed in the row, opened only to sign.

The sealing key is the data directory's (``remit.sealing``), found through the notification
settings (``notify.config``) as the outbox is. A secret is bound to its extension's id, so a
sealed value moved to another extension does not open there. Rows from before sealing hold the
secret in plaintext: they still sign, and ``seal_plaintext_secrets`` seals them in place (every
update of an extension's secret seals it as well); see docs/decisions/0019.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from remit import sealing
from remit.models.notify import CustomExtension
from remit.notify import config

Unreadable = sealing.Unreadable


class KeyMismatch(Exception):
    """This process's secrets key cannot open what the database holds sealed (start-up)."""


def _sealer() -> sealing.Sealer:
    return sealing.load_or_create(config.current().settings.data_dir)


def _context(extension_id: str) -> str:
    return f"custom_extensions.secret:{extension_id}"


def seal(extension_id: str, secret: str) -> str:
    """What ``CustomExtension.secret`` stores for ``secret``."""
    return _sealer().seal(secret, context=_context(extension_id))


def secret_of(ext: CustomExtension) -> str:
    """The extension's secret in plaintext; ``Unreadable`` if this process's key cannot open it."""
    return _sealer().open(ext.secret, context=_context(ext.id))


def seal_plaintext_secrets(session: Session) -> int:
    """Seal every secret still stored in plaintext; how many were sealed. Idempotent: each row is
    changed only while it still holds the plaintext that was read. The key is loaded (and made)
    only when there is something to seal."""
    rows = session.execute(
        select(CustomExtension.id, CustomExtension.secret).where(
            CustomExtension.secret.not_like(sealing.MARKER + "%")
        )
    ).all()
    if not rows:
        return 0
    sealer = _sealer()
    for ext_id, plaintext in rows:
        session.execute(
            update(CustomExtension)
            .where(CustomExtension.id == ext_id, CustomExtension.secret == plaintext)
            .values(secret=sealer.seal(plaintext, context=_context(ext_id)))
        )
    return len(rows)


def check_key(session: Session) -> None:
    """At start: the secrets the database holds sealed open with this process's key.

    A process whose data directory lacks the key file (or holds another one) would otherwise
    make a key of its own and seal under it what the other processes cannot open: refused with
    what to do instead. Nothing sealed yet: nothing to check (and no key is made here).
    """
    row = session.execute(
        select(CustomExtension.id, CustomExtension.secret)
        .where(CustomExtension.secret.like(sealing.MARKER + "%"))
        .limit(1)
    ).first()
    if row is None:
        return
    path = config.current().settings.data_dir / sealing.KEY_FILE
    share = "every remit process that shares this database needs the same secrets.key"
    if not path.exists():
        raise KeyMismatch(f"{path} is missing, and the database holds sealed secrets: {share}")
    try:
        _sealer().open(row.secret, context=_context(row.id))
    except Unreadable:
        raise KeyMismatch(f"{path} does not open the database's sealed secrets: {share}") from None
