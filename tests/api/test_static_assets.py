"""Stylesheets and scripts under a content-versioned URL (app/web/assets.py): cached by browsers for good, the
version following the files' contents, the plain path kept and revalidated, a page from before an upgrade still
served, nothing outside static/ reachable."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from app.web.assets import IMMUTABLE, content_version

STATIC = Path(__file__).resolve().parents[2] / "static"


def _asset_urls(html: str) -> list[str]:
    return re.findall(r'(?:href|src)="(?:https?://[^/"]+)?(/static/[^"]+)"', html)


def test_pages_name_versioned_assets_that_browsers_keep(client):
    html = client.get("/").text
    urls = _asset_urls(html)
    version = content_version(STATIC)
    assert urls and all(u.startswith(f"/static/{version}/") for u in urls), urls
    r = client.get(f"/static/{version}/css/medview.css")
    assert r.status_code == 200 and r.headers["cache-control"] == IMMUTABLE
    assert r.content == (STATIC / "css" / "medview.css").read_bytes()
    # an ES module's relative import resolves under the same version
    main = client.get(f"/static/{version}/js/viewer/main.js")
    assert main.status_code == 200 and main.headers["cache-control"] == IMMUTABLE
    assert 'from "./pane.js"' in main.text
    assert client.get(f"/static/{version}/js/viewer/pane.js").headers["cache-control"] == IMMUTABLE


def test_plain_and_older_versions_are_served_but_revalidated(client):
    plain = client.get("/static/css/medview.css")
    assert plain.status_code == 200 and plain.headers["cache-control"] == "no-cache"
    older = client.get("/static/v-000000000000/css/medview.css")  # a page left open across an upgrade
    assert older.status_code == 200 and older.headers["cache-control"] == "no-cache"
    assert older.content == plain.content
    etag = plain.headers["etag"]
    assert client.get("/static/css/medview.css", headers={"if-none-match": etag}).status_code == 304


def test_nothing_outside_static_is_served(client):
    version = content_version(STATIC)
    for url in (f"/static/{version}/../app/config.py", "/static/v-000000000000/../../pyproject.toml",
                f"/static/{version}/%2e%2e/app/config.py", "/static/v-000000000000/nosuch.js"):
        r = client.get(url)
        assert r.status_code == 404, (url, r.status_code)
        assert "Traceback" not in r.text


def test_the_version_follows_the_files_contents(tmp_path):
    copy = tmp_path / "static"
    shutil.copytree(STATIC / "css", copy / "css")
    first = content_version(copy)
    assert re.fullmatch(r"v-[0-9a-f]{12}", first)
    (copy / "css" / "medview.css").write_text("body { color: red }\n")
    changed = tmp_path / "static2"
    shutil.copytree(copy, changed)  # a new path: the version is computed once per directory and process
    assert content_version(changed) != first
