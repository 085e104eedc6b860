"""Uploaded files under `<data_dir>/uploads`, written durably and tied to the database transaction that uses them.

A file stored with `store_files` is deleted again when the transaction it was stored in does not commit (a
rollback, a commit that fails, a session closed without committing), so a failed request leaves no orphan file
behind; a report row never points to a file that is not on disk, because the file is fsynced before the commit.
Keys are relative paths with forward slashes (`reports/2026/11/<hex>.jpg`); they are made by `new_upload_key`,
never taken from the user.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import tempfile
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from kotacerdas.config import Settings

log = logging.getLogger("kotacerdas")

UPLOADS_FOLDER = "uploads"
# Every segment of a key: letters, digits, '-', '_' and '.', not starting with a dot (so no '..', no hidden files
# and no clash with the temporary files written beside the final ones).
_SEGMENT = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")
_SUFFIX = re.compile(r"^\.[a-z0-9]{1,10}$")
# session.info keys: files stored per (not yet finished) transaction, and the transactions that committed.
_PENDING = "kotacerdas.storage.pending"
_COMMITTED = "kotacerdas.storage.committed"


def uploads_dir(settings: Settings) -> Path:
    """The folder that holds every uploaded file."""
    return settings.data_dir / UPLOADS_FOLDER


def new_upload_key(prefix: str, suffix: str) -> str:
    """A fresh key `<prefix>/<YYYY>/<MM>/<128-bit random hex><suffix>` dated by UTC: `reports/2026/11/3f…e1.jpg`."""
    prefix = prefix.strip("/")
    if not _SUFFIX.match(suffix):
        raise ValueError(f"upload suffix must look like '.jpg', not {suffix!r}")
    now = datetime.now(UTC)
    key = f"{prefix}/{now:%Y}/{now:%m}/{secrets.token_hex(16)}{suffix}"
    check_key(key)
    return key


def check_key(key: str) -> str:
    """`key` itself when it is a safe relative path; ValueError (a programming error) otherwise."""
    if not isinstance(key, str) or not key:
        raise ValueError("upload key must be a non-empty string")
    if "\\" in key or "\x00" in key or key.startswith("/") or ".." in key.split("/"):
        raise ValueError(f"upload key must be a relative path without '..' or backslashes: {key!r}")
    if not all(_SEGMENT.match(part) for part in key.split("/")):
        raise ValueError(f"upload key has an empty or unsafe path segment: {key!r}")
    return key


def store_files(session: Session, *, settings: Settings, files: dict[str, bytes]) -> None:
    """Write each file durably (temp file, fsync, rename) and delete it again unless `session`'s transaction commits."""
    root = uploads_dir(settings)
    targets = {key: _path_inside(root, check_key(key)) for key in files}
    transaction = _current_transaction(session)
    written: list[Path] = []
    try:
        for key, path in targets.items():
            _write_durably(root, path, files[key])
            written.append(path)
            _register(session, transaction, path)
    except BaseException:
        # Not even partly stored, whatever the caller does next (it may catch the error and commit its rows).
        _delete_paths(written)
        raise


def open_upload(settings: Settings, key: str) -> Path:
    """The path of a stored upload; FileNotFoundError when the key is unsafe or names no stored file."""
    root = uploads_dir(settings)
    try:
        path = _path_inside(root, check_key(key))
    except ValueError:
        raise FileNotFoundError(key) from None
    if not path.is_file():
        raise FileNotFoundError(key)
    return path


def delete_files(settings: Settings, keys: Iterable[str]) -> None:
    """Delete stored uploads (missing ones are ignored); call it after the commit that stops using them."""
    root = uploads_dir(settings)
    paths = [_path_inside(root, check_key(key)) for key in keys]
    for path in paths:
        path.unlink(missing_ok=True)
    for directory in {path.parent for path in paths}:
        if directory.exists():
            _fsync_directory(directory)


# --- writing ------------------------------------------------------------------------------------------------------


def _path_inside(root: Path, key: str) -> Path:
    path = root / key
    # A symbolic link inside the uploads folder must not lead out of it.
    resolved_root = root.resolve()
    if not path.resolve().is_relative_to(resolved_root):
        raise ValueError(f"upload key leads outside the uploads folder: {key!r}")
    return path


def _write_durably(root: Path, path: Path, data: bytes) -> None:
    """Write `data` to `path` so that after a power cut it is either all there or not there at all."""
    _make_directories(root, path.parent)
    if path.exists():
        # Keys are random; an existing file means a reused key, and overwriting it would lose the old one.
        raise FileExistsError(f"upload already stored: {path}")
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _make_directories(root: Path, directory: Path) -> None:
    """Create `directory` and its missing parents, each made durable in its own parent."""
    missing = []
    current = directory
    while not current.exists():
        missing.append(current)
        if current == root or current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        folder.mkdir(parents=True, exist_ok=True)
        _fsync_directory(folder.parent)


def _fsync_directory(directory: Path) -> None:
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        # Some file systems (and platforms) refuse fsync on a directory; the rename is still atomic there.
        pass
    finally:
        os.close(descriptor)


def _delete_paths(paths: Iterable[Path]) -> None:
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            log.warning("could not delete the upload %s of a transaction that did not commit", path, exc_info=True)


# --- the transaction link -----------------------------------------------------------------------------------------


def _current_transaction(session: Session) -> SessionTransaction:
    """The innermost transaction (a savepoint, or the session's own), begun if the session has none yet."""
    if session.get_transaction() is None:
        session.begin()
    transaction = session.get_nested_transaction() or session.get_transaction()
    assert transaction is not None
    return transaction


def _register(session: Session, transaction: SessionTransaction, path: Path) -> None:
    if _PENDING not in session.info:
        session.info[_PENDING] = {}
        session.info[_COMMITTED] = set()
        event.listen(session, "after_commit", _on_commit)
        event.listen(session, "after_soft_rollback", _on_soft_rollback)
        event.listen(session, "after_transaction_end", _on_transaction_end)
    session.info[_PENDING].setdefault(transaction, []).append(path)


def _on_commit(session: Session) -> None:
    # Fired by the root transaction and by a released savepoint, before either is closed: the innermost open
    # transaction is the one that committed.
    pending = session.info.get(_PENDING)
    transaction = session.get_nested_transaction() or session.get_transaction()
    if pending and transaction in pending:
        session.info[_COMMITTED].add(transaction)


def _on_soft_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    # A failed flush (inside commit, too) rolls back a subtransaction, which rolls the database back up to the
    # enclosing savepoint or the whole transaction: those files are orphans now, before the caller's rollback.
    boundary = previous_transaction
    while boundary.parent is not None and not boundary.nested:
        boundary = boundary.parent
    paths = session.info[_PENDING].pop(boundary, None)
    if paths:
        session.info[_COMMITTED].discard(boundary)
        _delete_paths(paths)


def _on_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    pending = session.info.get(_PENDING)
    if not pending or transaction not in pending:
        return
    paths = pending.pop(transaction)
    committed = transaction in session.info[_COMMITTED]
    session.info[_COMMITTED].discard(transaction)
    if committed and transaction.parent is not None:
        # A released savepoint: its files now live or die with the enclosing transaction.
        pending.setdefault(transaction.parent, []).extend(paths)
    elif not committed:
        _delete_paths(paths)
