"""The data directory is private: the directory 0700, every file remit makes in it 0600.

It holds the token signing key, the key that seals secrets in the database, the SQLite database
(with the webhook secrets it seals) and the email outbox. Every place that creates something
there goes through this module; each start tightens what it finds looser (a data directory made
by an older remit, or by hand) and says so in the log, naming the path.

SQLite creates its ``-wal``, ``-shm`` and ``-journal`` files itself, and gives them the mode of
the database file (``findCreateFileMode`` in SQLite's os_unix.c, whatever the umask): so the
database file is made here, empty and 0600, before SQLite first opens it, and every sidecar
SQLite makes afterwards, even one it makes again after the last connection closed, is 0600
too. No process-wide umask is changed, so no other thread's files are affected.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import structlog

DIR_MODE = 0o700
FILE_MODE = 0o600
SQLITE_SIDECARS = ("-wal", "-shm", "-journal")
# What remit keeps in the data directory: the token signing key (tokens.KEY_FILE), the secrets
# key (sealing.KEY_FILE), the default SQLite database and its sidecars; the email outbox.
OWN_FILES = (
    "signing-key.pem",
    "secrets.key",
    "remit.db",
    *(f"remit.db{suffix}" for suffix in SQLITE_SIDECARS),
)
OUTBOX = "outbox"
OUTBOX_SUFFIXES = (".eml", ".part")

log = structlog.get_logger("remit.datadir")


def private_dir(path: Path) -> Path:
    """``path`` as a directory of mode 0700: made so (parents as the umask says), or tightened."""
    try:
        path.mkdir(mode=DIR_MODE, parents=True)
    except FileExistsError:
        tighten(path.resolve(), DIR_MODE)  # a data directory may be a link to where it lives
    else:
        os.chmod(path, DIR_MODE)  # mkdir's mode passes through the umask; 0700 is meant exactly
    return path


def private_data_dir(data_dir: Path) -> Path:
    """The data directory made 0700, and what remit keeps in it tightened to 0600 (the outbox
    0700). Only remit's own files: a data directory pointed at a shared place keeps the rest."""
    private_dir(data_dir)
    for name in OWN_FILES:
        tighten(data_dir / name, FILE_MODE)
    outbox = data_dir / OUTBOX
    if outbox.is_dir():
        tighten(outbox, DIR_MODE)
        with os.scandir(outbox) as entries:
            for entry in entries:
                if entry.name.endswith(OUTBOX_SUFFIXES) and entry.is_file(follow_symlinks=False):
                    tighten(Path(entry.path), FILE_MODE)
    return data_dir


def tighten(path: Path, mode: int) -> None:
    """Take from ``path`` any permission beyond ``mode``, with a warning naming it."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        # Not followed: a link's target is not remit's to change (and may be anywhere).
        log.warning("datadir.symlink_left_alone", path=str(path))
        return
    found = stat.S_IMODE(info.st_mode)
    if found & ~mode == 0:
        return
    try:
        os.chmod(path, found & mode)
    except OSError as exc:
        log.warning("datadir.not_private", path=str(path), mode=f"{found:04o}", error=exc.strerror)
        return
    log.warning("datadir.tightened", path=str(path), was=f"{found:04o}", now=f"{found & mode:04o}")


def create_private(path: Path, content: bytes) -> bool:
    """Write ``content`` to a new file of mode 0600; False if the file was there already (another
    process won the race: read what it wrote).

    Written aside and linked into place, so a process that loses the race never reads a file
    that is still being written. A file system without hard links (some network shares) gets
    the file created in place with ``O_EXCL`` instead: the race is still decided once, but a
    loser could read it while the winner writes (a start-up race on such a share only).
    """
    aside = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
    _write_new(aside, content)
    try:
        os.link(aside, path)
    except FileExistsError:
        return False
    except OSError:  # no hard links here (EPERM, ENOTSUP, ...)
        try:
            _write_new(path, content)
        except FileExistsError:
            return False
    finally:
        aside.unlink(missing_ok=True)
    return True


def _write_new(path: Path, content: bytes) -> None:
    """A new file of mode 0600 holding ``content``, flushed to disk (FileExistsError if there)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with os.fdopen(fd, "wb") as out:
        out.write(content)
        out.flush()
        os.fsync(out.fileno())


def read_private(path: Path) -> bytes:
    """The content of a file remit keeps private, tightened first if it was looser."""
    tighten(path, FILE_MODE)
    return path.read_bytes()


def private_sqlite(database: str) -> None:
    """Make the SQLite database file ``database`` (a path) 0600 before SQLite opens it, and
    tighten it and its sidecar files if they are looser."""
    path = Path(database)
    if not path.parent.is_dir():
        private_dir(path.parent)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        tighten(path, FILE_MODE)
    for suffix in SQLITE_SIDECARS:
        tighten(path.with_name(path.name + suffix), FILE_MODE)
