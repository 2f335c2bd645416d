"""The exports page in chromium: the grid's "Export…" link brings its filters into the form, the format list
follows the dataset, a refused export says why, a started one runs (POST /api/exports with the CSRF header) and
its row gets the download link when it is done. Screenshots go to MEDVIEW_SHOTS_DIR when set."""

from __future__ import annotations

import os
from pathlib import Path

SHOTS = os.environ.get("MEDVIEW_SHOTS_DIR")


def _shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / name), full_page=True)


def test_start_an_export_from_the_page(page, live_server, ingested):
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{live_server}/datasets/{ingested.dataset_id}?split=train")  # the grid's "Export…" carries its filters
    page.wait_for_selector("#export-link")
    _shot(page, "dataset-export-link.png")
    page.click("#export-link")
    page.wait_for_url("**/exports?**")
    assert page.input_value("#export-filters") == "split=train"
    page.fill("#export-filters", "split=nowhere")
    formats = page.eval_on_selector_all("#export-format option", "os => os.map(o => o.value)")
    assert formats == ["coco", "csv", "deeplesion-csv", "nifti"]
    page.select_option("#export-format", "deeplesion-csv")
    page.click("#export-form button[type=submit]")
    page.wait_for_selector("#export-message:not([hidden])")
    assert "no item" in page.text_content("#export-message")
    _shot(page, "exports-refused.png")

    page.fill("#export-filters", "split=train")
    page.select_option("#export-format", "coco")
    page.click("#export-form button[type=submit]")
    link = page.wait_for_selector("#export-table tr[data-status=done] a[download]", timeout=30000)
    assert link.text_content() == "annotations.json"
    row = page.text_content("#export-table tbody tr")
    assert "coco" in row and "split=train" in row and "done" in row
    _shot(page, "exports-done.png")
    assert not errors, errors


def test_the_export_link_carries_the_grid_selection(page, live_server, ingested):
    """Ctrl-click two cards: "Export…" brings their ids into the form, and the CSV holds exactly those items."""
    import csv
    import io

    from tests.helpers.live import live_client

    page.goto(f"{live_server}/datasets/{ingested.dataset_id}?sort=-id")
    cards = page.locator("#grid a.card[data-id]")
    cards.nth(3).wait_for()
    picked = [cards.nth(n).get_attribute("data-id") for n in (1, 3)]
    for n in (1, 3):
        cards.nth(n).click(modifiers=["Control"])
    assert page.inner_text("#selection-count") == "2"
    page.click("#export-link")
    page.wait_for_url("**/exports?**")
    assert page.input_value("#export-filters") == f"id={picked[0]}&id={picked[1]}"
    page.select_option("#export-format", "csv")
    page.click("#export-form button[type=submit]")
    page.wait_for_selector("#export-table tr[data-status=done] a[download]", timeout=30000)
    with live_client(live_server) as api:
        done = api.get("/api/exports").json()[0]
        table = api.get(done["download_url"]).text
        keys = {api.get(f"/api/items/{i}").json()["key"] for i in picked}
    assert {row["key"] for row in csv.DictReader(io.StringIO(table))} == keys
