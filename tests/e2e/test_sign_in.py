"""A person signs in, opens an item, signs out: the real pages in Debian chromium, no cookie planted."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import VIEWPORT
from tests.helpers.auth import PASSWORD, ensure_user
from tests.helpers.browser import VIEWER_READY
from tests.helpers.live import live_get

SHOTS = Path("/tmp/medview-shots")  # screenshots for a person to look at, when the folder exists


def test_sign_in_item_page_sign_out(browser, live_server, settings, ingested, tmp_path):
    ensure_user(settings, "dr-ana", "reviewer")
    item_id = live_get(f"{live_server}/api/datasets/{ingested.dataset_id}/items").json()["items"][0]["id"]
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(f"{live_server}/items/{item_id}")
        page.wait_for_url("**/login?next=*")  # not signed in: sent to the sign-in page, keeping where to go
        page.fill("input[name=username]", "dr-ana")
        page.fill("input[name=password]", "not the password")
        page.click("button[type=submit]")
        page.wait_for_selector(".signin-error")
        assert "wrong username or password" in page.inner_text(".signin-error")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"**/items/{item_id}")
        page.wait_for_function(VIEWER_READY)  # the viewer drew the slice: its scripts ran under the CSP
        assert "dr-ana" in page.inner_text(".whoami") and "reviewer" in page.inner_text(".role-badge")
        page.screenshot(path=str(SHOTS / "signed-in.png")) if SHOTS.is_dir() else None
        cookie = next(c for c in context.cookies() if c["name"] == "medview_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
        page.click("form.signout button")
        page.wait_for_url("**/login")
        page.goto(f"{live_server}/items/{item_id}")
        page.wait_for_url("**/login?next=*")  # signed out: the item is closed again
    finally:
        context.close()
    assert not errors, f"JavaScript errors: {errors}"
