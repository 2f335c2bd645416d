"""Built-in review queue suggestions (the adapters' `queue_suggestions`, app.datasets.declarations.QueueSuggestion)
resolved for one dataset: those whose facet values the dataset has, and those needing a model metric once per
model that has that metric on the dataset. Pure: the caller passes the dataset's facet counts and metric sorts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from app.datasets.declarations import QueueSuggestion


def applicable(suggestions: Sequence[QueueSuggestion], facet_counts: Mapping[str, Mapping[str, Any]],
               metric_sorts: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """[{"name", "filters", "sort", "limit", "readers_per_item", "model"}] ready for POST /api/review/queues.
    `metric_sorts` are the grid's (sort value `metric:MODEL:NAME`, display name `MODEL NAME: NAME`) pairs."""
    out: list[dict[str, Any]] = []
    for s in suggestions:
        filters = {field: list(values) for field, values in s.filters}
        if any(not any((facet_counts.get(field) or {}).get(v) for v in values) for field, values in filters.items()):
            continue  # the dataset has no item with that facet value
        base = {"filters": filters, "limit": s.limit, "readers_per_item": s.readers_per_item}
        if s.needs_model is None:
            out.append({**base, "name": s.name, "sort": s.sort, "model": None})
            continue
        for value, display in metric_sorts:
            _, model_id, metric = value.split(":", 2)
            if metric == s.needs_model and s.sort is not None:
                model = display.rsplit(":", 1)[0]
                out.append({**base, "name": f"{s.name} ({model})", "sort": s.sort.replace("{model}", model_id),
                            "model": model})
    return out
