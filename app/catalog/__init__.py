"""Read-side services over the index: datasets, facets, item pages, items, patients.

Both the JSON API and the HTML pages call these, so the two renderings never disagree.
"""
