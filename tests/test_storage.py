"""Uploaded files: written durably, readable, and gone again when the transaction that stored them does not commit."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from kotacerdas import storage
from kotacerdas.agencies.models import Agency

BAD_KEYS = ["../x.jpg", "a/../../x.jpg", "/etc/passwd", "a\\b.jpg", "", "a//b.jpg", ".hidden.jpg", "a/./b.jpg", "a/"]


def uploads(settings):
    return settings.data_dir / "uploads"


def exists(settings, key: str) -> bool:
    return (uploads(settings) / key).is_file()


def add_agency(session, short_name: str) -> None:
    session.add(Agency(name=f"Dinas {short_name}", short_name=short_name, kind="dinas"))


def test_stored_files_are_readable_and_kept_by_a_commit(session, settings):
    files = {"reports/2026/11/a.jpg": b"\xff\xd8full", "reports/2026/11/a-thumb.jpg": b"\xff\xd8thumb"}
    storage.store_files(session, settings=settings, files=files)
    for key, data in files.items():
        assert storage.open_upload(settings, key).read_bytes() == data
    add_agency(session, "DPU")
    session.commit()
    session.close()

    for key, data in files.items():
        assert storage.open_upload(settings, key).read_bytes() == data
    # Temporary files of the atomic write do not stay behind.
    assert sorted(p.name for p in (uploads(settings) / "reports/2026/11").iterdir()) == ["a-thumb.jpg", "a.jpg"]


def test_a_rollback_deletes_the_files(session, settings):
    add_agency(session, "DPU")
    session.flush()
    storage.store_files(session, settings=settings, files={"reports/r.jpg": b"x", "reports/r-t.jpg": b"y"})
    assert exists(settings, "reports/r.jpg")
    session.rollback()
    assert not exists(settings, "reports/r.jpg")
    assert not exists(settings, "reports/r-t.jpg")


def test_closing_the_session_without_commit_deletes_the_files(session, settings):
    storage.store_files(session, settings=settings, files={"reports/c.jpg": b"x"})
    session.close()
    assert not exists(settings, "reports/c.jpg")


def test_a_failed_commit_deletes_the_files(session, settings):
    add_agency(session, "DPU")
    session.commit()

    add_agency(session, "DPU")  # the unique short name fails when the commit flushes it
    storage.store_files(session, settings=settings, files={"reports/f.jpg": b"x"})
    with pytest.raises(IntegrityError):
        session.commit()
    assert not exists(settings, "reports/f.jpg")
    session.rollback()
    assert not exists(settings, "reports/f.jpg")
    assert session.scalar(sa.select(sa.func.count()).select_from(Agency)) == 1


def test_files_of_a_later_transaction_are_tracked_on_their_own(session, settings):
    storage.store_files(session, settings=settings, files={"reports/one.jpg": b"1"})
    session.commit()
    storage.store_files(session, settings=settings, files={"reports/two.jpg": b"2"})
    session.rollback()
    assert exists(settings, "reports/one.jpg")
    assert not exists(settings, "reports/two.jpg")


def test_savepoints(session, settings):
    add_agency(session, "DPU")
    storage.store_files(session, settings=settings, files={"reports/outer.jpg": b"o"})
    with pytest.raises(RuntimeError), session.begin_nested():
        storage.store_files(session, settings=settings, files={"reports/failed.jpg": b"f"})
        raise RuntimeError("the savepoint's work fails")
    assert not exists(settings, "reports/failed.jpg")
    with session.begin_nested():
        storage.store_files(session, settings=settings, files={"reports/inner.jpg": b"i"})
    session.commit()
    assert exists(settings, "reports/outer.jpg")
    assert exists(settings, "reports/inner.jpg")

    # A released savepoint's files go with the enclosing transaction when that one rolls back.
    with session.begin_nested():
        storage.store_files(session, settings=settings, files={"reports/released.jpg": b"r"})
    session.rollback()
    assert not exists(settings, "reports/released.jpg")
    assert exists(settings, "reports/inner.jpg")


def test_an_existing_file_is_never_overwritten(session, settings):
    storage.store_files(session, settings=settings, files={"reports/same.jpg": b"first"})
    session.commit()
    with pytest.raises(FileExistsError):
        storage.store_files(session, settings=settings, files={"reports/new.jpg": b"n", "reports/same.jpg": b"2nd"})
    # The call stored nothing, and the rollback does not touch the file it refused to overwrite.
    assert not exists(settings, "reports/new.jpg")
    session.rollback()
    assert storage.open_upload(settings, "reports/same.jpg").read_bytes() == b"first"


@pytest.mark.parametrize("key", BAD_KEYS)
def test_unsafe_keys_are_refused(session, settings, key):
    with pytest.raises(ValueError):
        storage.store_files(session, settings=settings, files={key: b"x"})
    with pytest.raises(ValueError):
        storage.delete_files(settings, [key])
    with pytest.raises(FileNotFoundError):
        storage.open_upload(settings, key)
    assert not any(settings.data_dir.parent.rglob("x.jpg"))


def test_open_and_delete(session, settings, tmp_path):
    storage.store_files(session, settings=settings, files={"reports/d.jpg": b"x"})
    session.commit()
    with pytest.raises(FileNotFoundError):
        storage.open_upload(settings, "reports/missing.jpg")
    with pytest.raises(FileNotFoundError):
        storage.open_upload(settings, "reports")  # a folder is not an upload
    # A symbolic link must not lead out of the uploads folder.
    (tmp_path / "secret.txt").write_text("secret")
    (uploads(settings) / "reports" / "link.jpg").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(FileNotFoundError):
        storage.open_upload(settings, "reports/link.jpg")

    storage.delete_files(settings, ["reports/d.jpg", "reports/never-stored.jpg"])
    assert not exists(settings, "reports/d.jpg")


def test_new_upload_key():
    keys = {storage.new_upload_key("reports", ".jpg") for _ in range(100)}
    assert len(keys) == 100
    now = datetime.now(UTC)
    for key in keys:
        assert re.fullmatch(rf"reports/{now:%Y}/{now:%m}/[0-9a-f]{{32}}\.jpg", key)
        assert storage.check_key(key) == key
    with pytest.raises(ValueError):
        storage.new_upload_key("reports", "jpg")
    with pytest.raises(ValueError):
        storage.new_upload_key("../reports", ".jpg")
