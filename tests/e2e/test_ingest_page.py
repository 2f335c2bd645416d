""""Add dataset…" on the datasets page, in chromium: a folder outside the data roots is refused with the server's
reason under the form; a folder inside them is ingested as a job (POST /api/datasets with the CSRF header) whose
row shows its phase and progress until it is done, and the page then lists the new dataset. Screenshots go to
MEDVIEW_SHOTS_DIR when set."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from app.datasets.imagefolder.synth import generate_imagefolder

pytestmark = pytest.mark.browser
SHOTS = os.environ.get("MEDVIEW_SHOTS_DIR")


@pytest.fixture
def settings(make_settings):
    """Items written one per transaction, so that the writing phase lasts long enough to be watched."""
    return make_settings(ingest_batch=1)


def _shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / name), full_page=True)


def test_an_admin_adds_a_dataset_from_the_datasets_page(page, live_server, tmp_path):
    cells = generate_imagefolder(tmp_path / "incoming" / "marrow", layout="folders", classes=["EOS", "LYT", "BLA"],
                                 per_class=8, seed=3, size=32).root
    page.goto(f"{live_server}/")
    assert page.locator("#dataset-table tbody tr").count() == 1  # the DeepLesion sample
    page.click("#add-dataset > summary")
    page.wait_for_selector("#ingest-form", state="visible")
    kinds = page.eval_on_selector_all("#ingest-kind option", "os => os.map(o => o.value)")
    assert kinds[0] == "" and {"deeplesion", "imagefolder", "pcam"} <= set(kinds)

    page.fill("#ingest-path", "/etc")
    page.click("#ingest-form button[type=submit]")
    page.wait_for_selector("#ingest-message:not([hidden])")
    assert "outside the data roots" in page.text_content("#ingest-message")
    assert page.locator("#ingest-jobs li").count() == 0
    _shot(page, "ingest-refused.png")

    page.fill("#ingest-path", str(cells))
    page.fill("#ingest-name", "marrow-e2e")
    _shot(page, "ingest-form.png")
    page.click("#ingest-form button[type=submit]")
    # the job's row, at once (queued, or already further), with the kind the server detected. Read through
    # locators, which re-resolve: 24 items can be done, and the page reloaded, between two steps of this test.
    expect(page.locator("#ingest-jobs li.ingest-job").first).to_contain_text("marrow-e2e (imagefolder)")
    expect(page.locator("#ingest-message")).to_be_hidden()
    # done: the page reloads with the dataset listed and the finished job linking it
    page.wait_for_selector("#dataset-table a:text-is('marrow-e2e')", timeout=30000)
    expect(page.locator("#ingest-jobs li.ingest-job[data-status=done]")).to_contain_text("done · 24 items")
    row = page.locator("#dataset-table tr", has=page.locator("a:text-is('marrow-e2e')"))
    assert "imagefolder" in row.text_content() and "ready" in row.text_content() and "24" in row.text_content()
    _shot(page, "ingest-done.png")
    page.click("#ingest-jobs li.ingest-job[data-status=done] a:text-is('Open dataset')")
    page.wait_for_url("**/datasets/*")
    assert "marrow-e2e" in page.title()


def test_progress_shows_the_phase_and_counts_while_the_ingest_runs(page, live_server, tmp_path):
    """A folder of 1,260 images written one item per transaction (MEDVIEW_INGEST_BATCH=1, this module's setting):
    the row shows the writing phase with its counts before the page lists the dataset."""
    cells = generate_imagefolder(tmp_path / "incoming" / "big", layout="folders", per_class=60, seed=4,
                                 size=16).root
    page.goto(f"{live_server}/")
    page.click("#add-dataset > summary")
    page.fill("#ingest-path", str(cells))
    page.click("#ingest-form button[type=submit]")
    # text and bar read in one step, in the page: the page reloads itself as soon as the ingest is done
    seen = page.wait_for_function("""() => {
        const li = document.querySelector('#ingest-jobs li.ingest-job[data-phase="writing items"]');
        const bar = li && li.querySelector('progress');
        return li && bar && bar.value > 0 ? {text: li.textContent, value: bar.value} : null;
    }""", timeout=30000).json_value()
    assert re.search(r"running · writing items [\d,]+ / [\d,]+", seen["text"]), seen
    assert 0 < int(seen["value"]) <= 1260, seen
    page.wait_for_selector("#dataset-table a:text-is('big')", timeout=60000)
    assert "done · " in page.text_content("#ingest-jobs li.ingest-job[data-status=done]")


def test_a_failed_ingest_shows_the_reason_and_its_problems(page, live_server, tmp_path):
    broken = tmp_path / "incoming" / "broken" / "EOS"
    broken.mkdir(parents=True)
    for n in range(3):
        (broken / f"cell{n}.jpg").write_bytes(b"not a jpeg")
    page.goto(f"{live_server}/")
    page.click("#add-dataset > summary")
    page.fill("#ingest-path", str(broken.parent))
    page.select_option("#ingest-kind", "imagefolder")
    page.click("#ingest-form button[type=submit]")
    failed = page.wait_for_selector("#ingest-jobs li.ingest-job[data-status=failed]", timeout=30000)
    assert "failed — " in failed.text_content() and "could be read" in failed.text_content()
    problems = page.eval_on_selector_all("#ingest-jobs li.ingest-job .job-problems li",
                                         "ls => ls.map(l => l.textContent)")
    assert len(problems) == 3 and all(p.startswith("EOS/cell") for p in problems), problems
    assert page.locator("#dataset-table a:text-is('broken')").count() == 0
    _shot(page, "ingest-failed.png")
