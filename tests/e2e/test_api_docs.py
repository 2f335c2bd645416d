"""`/docs` renders in chromium with every request outside the app refused (no network): Swagger UI is local."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


def test_swagger_ui_renders_without_network(live_server, page):
    outside: list[str] = []

    def only_the_app(route):
        if route.request.url.startswith(live_server):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort("internetdisconnected")

    page.context.route("**/*", only_the_app)
    page.goto(f"{live_server}/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=20000)
    assert page.inner_text(".info .title").startswith("MedView")
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/api/health" in paths and "/api/items/{item_id}/render" in paths
    assert outside == []
