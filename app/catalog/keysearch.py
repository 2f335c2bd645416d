"""Key search (issue 14): `search=TEXT` finds items by part of their key — a patient id finds its key slices.

A filter like any other (it rides in the grid's filters, so /items, /facets, /sheet, the item page's neighbours
and exports all apply it), built here as one WHERE clause:

- a dataset of at most SUBSTRING_MAX_ITEMS items matches keys that *contain* TEXT, ignoring case (one scan of
  the dataset's keys, bounded by that size; the grid searches when the form is submitted, not per keystroke);
- a larger dataset matches keys that *start with* TEXT (case as typed): the range `key >= TEXT AND key <
  TEXT + U+10FFFF` on the (dataset_id, key) unique index, so 1M items cost an index range, never a scan. Both
  databases compare keys by code point (SQLite BINARY, PostgreSQL C collation), so the range is exactly the
  prefix; the LIKE kept beside it makes that true under any collation.

Repeated values are OR-ed, like a facet's.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, or_

from app.db.models import Dataset, Item
from app.errors import InvalidInput

SEARCH_FIELD = "search"
SUBSTRING_MAX_ITEMS = 200_000
MAX_LENGTH = 256
_TOP = "\U0010ffff"


def search_mode(dataset: Dataset) -> str:
    """"substring" or "prefix": how `search` matches keys in this dataset."""
    return "substring" if (dataset.item_count or 0) <= SUBSTRING_MAX_ITEMS else "prefix"


def key_search(dataset: Dataset, values: Sequence[str]):
    """WHERE clause of the items whose key matches any of `values` (InvalidInput for an empty or long value)."""
    clauses = []
    for text in values:
        if not text.strip():
            raise InvalidInput("search: give part of an item key (it was empty)")
        if len(text) > MAX_LENGTH:
            raise InvalidInput(f"search: at most {MAX_LENGTH} characters, got {len(text)}")
        if search_mode(dataset) == "substring":
            clauses.append(Item.key.icontains(text, autoescape=True))
        else:
            clauses.append(and_(Item.key >= text, Item.key < text + _TOP,
                                Item.key.startswith(text, autoescape=True)))
    return or_(*clauses)
