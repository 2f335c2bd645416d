"""The catalog's per-app state: facet indexes and built charts, made in the app's lifespan and kept on
`app.state.catalog` (routes get it through `app.api.deps.CatalogDep`). Nothing of it lives in a module, so two
apps in one process (tests) never see each other's datasets."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.catalog.charts import ChartCache
from app.catalog.counts import FacetIndexes


@dataclass
class Catalog:
    indexes: FacetIndexes = field(default_factory=FacetIndexes)
    charts: ChartCache = field(default_factory=ChartCache)

    def forget(self) -> None:
        """Drop every cached index and chart (they are rebuilt on next use)."""
        self.indexes.forget()
        self.charts.forget()
