"""Waiting on what the pages do, for the Playwright tests: the viewer's redraws and URL, the grid's loading.

Each wait is on a condition the page exposes (window.medviewViewer, window.medviewGrid), never a fixed pause.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

VIEWER_READY = "() => window.medviewViewer && window.medviewViewer.ready()"
# ready, and at least one frame drawn since the count `n` was read
_VIEWER_REDRAWN = "(n) => window.medviewViewer.ready() && window.medviewViewer.viewer.frames > n"
# The viewer mirrors its state in the address bar after a short debounce (static/js/viewer/url.js). Writing the
# pending state at once, through the same module instance, leaves the address bar as it will stay.
_FLUSH_VIEW_URL = """async () => {
  const main = document.querySelector('script[type=module][src*="/viewer/main.js"]').src;
  const { syncUrl } = await import(new URL("url.js", main).href);
  syncUrl(window.medviewViewer.state, true);
  return location.href;
}"""
# The grid is settled: the scroll position is the one of the previous poll (polled once per animation frame,
# so a smooth scroll still moving fails it), no render is pending, no page is loading, and every card in the
# window is filled (a card of a page still to be fetched is `.pending`).
_GRID_SETTLED = """() => {
  const g = window.medviewGrid, y = window.scrollY, still = window.__settleY === y;
  window.__settleY = y;
  return Boolean(still && g && !g.frame && g.loading.size === 0 && document.querySelector('#grid .card')
                 && !document.querySelector('#grid .card.pending'));
}"""
AT_BOTTOM = "() => Math.ceil(scrollY + innerHeight) >= document.documentElement.scrollHeight"


@contextmanager
def viewer_redrawn(page) -> Iterator[None]:
    """Do the block's input (keys, clicks, drags, wheel), then wait until the viewer has drawn it and is idle."""
    before = page.evaluate("() => window.medviewViewer.viewer.frames")
    yield
    page.wait_for_function(_VIEWER_REDRAWN, arg=before)


def flush_view_url(page) -> str:
    """The page URL once the viewer's pending (debounced) URL write has been made."""
    return page.evaluate(_FLUSH_VIEW_URL)


def settle_grid(page, timeout: float = 15000) -> None:
    """Wait until the grid shows loaded cards for where the page is scrolled, and stays there."""
    page.evaluate("() => { delete window.__settleY; }")
    page.wait_for_function(_GRID_SETTLED, timeout=timeout, polling="raf")


def bar_widths(page) -> list[float]:
    """Each prediction probability bar's rendered width as a share of its track."""
    return page.eval_on_selector_all(
        "#prediction-list .prediction .prob-bar",
        "bars => bars.map(b => b.getBoundingClientRect().width / b.parentElement.clientWidth)")
