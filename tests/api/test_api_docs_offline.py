"""`/docs` (Swagger UI) works offline: every asset it loads is a local /static file that is served."""

from __future__ import annotations

from html.parser import HTMLParser

ONLINE_HINTS = ("cdn", "jsdelivr", "unpkg", "googleapis", "http://", "https://")


class _Assets(HTMLParser):
    """The URLs a page loads: <script src>, <link href>, <img src>."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href", "img": "src"}.get(tag)
        for name, value in attrs:
            if name == wanted and value:
                self.urls.append(value)


def test_docs_page_loads_only_local_assets(client):
    r = client.get("/docs")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    body = r.text
    for hint in ONLINE_HINTS:
        assert hint not in body.lower(), f"/docs mentions {hint!r}: it would load something from the network"
    parser = _Assets()
    parser.feed(body)
    assert len(parser.urls) >= 3, parser.urls  # the bundle, its stylesheet, the favicon
    for url in parser.urls:
        assert url.startswith(("/static/vendor/swagger-ui/", "/static/js/")), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 0, url
    types = {u.rsplit(".", 1)[-1]: client.get(u).headers["content-type"] for u in parser.urls}
    assert "javascript" in types["js"] and types["css"].startswith("text/css") and types["png"] == "image/png", types
    assert 'data-openapi-url="/openapi.json"' in body and "<script>" not in body  # started by an external script
    init = client.get("/static/js/swagger-init.js").text
    assert "validatorUrl: null" in init  # no badge fetched from the online validator


def test_openapi_schema_is_served_and_redoc_is_not(client):
    schema = client.get("/openapi.json")
    assert schema.status_code == 200
    assert "/api/health" in schema.json()["paths"]
    assert client.get("/redoc").status_code == 404  # only one docs UI, and it is the offline one
    assert client.get("/docs/oauth2-redirect").status_code == 404  # no OAuth in this app


def test_vendored_swagger_notes_version_and_licence():
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2] / "static" / "vendor" / "swagger-ui"
    version = (folder / "VERSION").read_text().strip()
    notes = (folder / "README.md").read_text()
    assert f"**{version}**" in notes and "Apache License 2.0" in notes
    assert (folder / "LICENSE").read_text().lstrip().startswith("Apache License")
