"""Issue 14: a dataset whose files the server cannot read (its folder moved away, left out of MEDVIEW_DATA_ROOTS,
item files deleted) says so — `files_warning` in its JSON and a banner on its page — instead of showing silent
broken thumbnails; the text names the folder as this user may see it (absolute to admins only)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.catalog import readable
from app.datasets.imagefolder.synth import generate_imagefolder
from app.datasets.ingest import ingest_path
from tests.helpers.auth import api_token


def _as(settings, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token(settings, f'user-{role}', role)}"}


@pytest.fixture
def folder(engine, settings, tmp_path):
    sample = generate_imagefolder(tmp_path / "cells", per_class=1, classes=["a", "b", "c"], size=32)
    report = ingest_path(engine, settings, sample.root, kind="imagefolder", name="cells")
    readable.clear_cache()
    yield report.dataset_id, Path(sample.root)
    readable.clear_cache()


def _warning(client, ds: int, **kw) -> str | None:
    r = client.get(f"/api/datasets/{ds}", **kw)
    assert r.status_code == 200, r.text
    return r.json()["files_warning"]


def test_readable_dataset_has_no_warning(client, folder):
    ds, _ = folder
    assert _warning(client, ds) is None
    page = client.get(f"/datasets/{ds}")
    assert page.status_code == 200 and 'id="files-warning"' not in page.text


def test_moved_folder_is_named_to_admins_and_relative_to_others(client, anon_client, settings, folder, tmp_path):
    ds, root = folder
    assert _warning(client, ds) is None
    root.rename(tmp_path / "elsewhere")
    readable.clear_cache()  # the answer is kept TTL seconds; a reload after that sees the move
    text = _warning(client, ds)
    assert text and str(root) in text and "no longer exists" in text
    viewer = _warning(anon_client, ds, headers=_as(settings, "viewer"))
    assert viewer and "no longer exists" in viewer and str(tmp_path) not in viewer and root.name in viewer
    page = client.get(f"/datasets/{ds}")
    assert page.status_code == 200 and 'id="files-warning"' in page.text and "no longer exists" in page.text
    # the grid still renders (broken thumbnails are explained, not a 500)
    assert client.get(f"/api/datasets/{ds}/items").status_code == 200


def test_folder_outside_the_data_roots(make_settings, settings, folder, tmp_path_factory):
    ds, root = folder
    from app.main import create_app

    narrow = make_settings(data_roots=str(tmp_path_factory.mktemp("other-root")))
    with TestClient(create_app(narrow)) as c:
        text = c.get(f"/api/datasets/{ds}", headers={"Authorization": f"Bearer {api_token(narrow)}"}).json()[
            "files_warning"]
    assert text and "outside MEDVIEW_DATA_ROOTS" in text


def test_missing_item_files_are_counted_and_named_relative(client, folder):
    ds, root = folder
    first = client.get(f"/api/datasets/{ds}/items?limit=1").json()["items"][0]["key"]
    (root / first).unlink()
    readable.clear_cache()
    text = _warning(client, ds)
    assert text and f"1 of the {readable.SAMPLE} item files" in text and first in text
    assert str(root / first) not in text  # the file relative to the dataset root only


def test_unreadable_folder(client, folder):
    ds, root = folder
    import os

    if os.geteuid() == 0:
        pytest.skip("root reads any folder whatever its mode")
    root.chmod(0)
    try:
        readable.clear_cache()
        text = _warning(client, ds)
        assert text and "cannot be read" in text
    finally:
        root.chmod(0o755)
        shutil.rmtree(root)
