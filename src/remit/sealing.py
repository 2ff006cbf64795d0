"""Secrets the database holds are sealed with a key that the database does not hold.

The key is 32 random bytes in ``data_dir/secrets.key`` (mode 0600, beside the token signing key),
made on first use; a sealed value is AES-256-GCM with a fresh 96-bit nonce, bound to what it is
the secret of (``context``, e.g. the column and the row id), so a sealed value copied to another
row does not open there. A copy of the database, a backup or a replica then gives away no
webhook signing secret without the data directory too (docs/decisions/0019).

Stored form: ``"sealed:1 " + base64url(nonce + ciphertext + tag)``. The space cannot occur in a
secret remit ever accepted (they are printable ASCII without spaces), so a value without the
marker is a plaintext one written before sealing existed: ``open`` returns it as it is, and
``is_sealed`` lets the owner of the column seal it.
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from remit import datadir

KEY_FILE = "secrets.key"
MARKER = "sealed:1 "
_NONCE = 12


class Unreadable(Exception):
    """A sealed value this key cannot open: another key sealed it, or it was altered."""


class Sealer:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("a sealing key is 32 bytes")
        self._aead = AESGCM(key)

    def seal(self, plaintext: str, *, context: str) -> str:
        nonce = os.urandom(_NONCE)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return MARKER + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, stored: str, *, context: str) -> str:
        """The plaintext of ``stored`` (returned as it is when it was never sealed)."""
        if not is_sealed(stored):
            return stored
        try:
            raw = base64.urlsafe_b64decode(stored[len(MARKER) :])
            return self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], context.encode()).decode()
        except (InvalidTag, binascii.Error, ValueError) as exc:
            # Never the value in the message; the context names the row.
            raise Unreadable(f"{context} cannot be opened with this secrets key") from exc


def is_sealed(stored: str) -> bool:
    return stored.startswith(MARKER)


def sealed_length(plaintext_length: int) -> int:
    """The stored length of a sealed secret of ``plaintext_length`` ASCII characters."""
    raw = _NONCE + plaintext_length + 16
    return len(MARKER) + 4 * ((raw + 2) // 3)


@functools.cache
def _load_or_create(directory: Path) -> Sealer:
    path = directory / KEY_FILE
    if not path.exists():
        datadir.private_dir(directory)
        datadir.create_private(path, base64.urlsafe_b64encode(os.urandom(32)) + b"\n")
    try:
        key = base64.urlsafe_b64decode(datadir.read_private(path).strip())
    except binascii.Error:
        key = b""
    if len(key) != 32:
        raise RuntimeError(f"{path} does not hold a secrets key (32 bytes, base64)")
    return Sealer(key)


def load_or_create(data_dir: Path) -> Sealer:
    """The sealer of ``data_dir``'s key, made on first use (once per process and directory).

    Every process that shares a database (``remit worker`` processes and API servers against
    one PostgreSQL) must share this key file, as they share the signing key.
    """
    return _load_or_create(data_dir.resolve())
