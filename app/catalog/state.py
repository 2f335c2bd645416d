"""The catalog's per-app state: facet indexes, numeric sort orders and built charts, made in the app's lifespan
and kept on `app.state.catalog` (routes get it through `app.api.deps.CatalogDep`). Nothing of it lives in a
module, so two apps in one process (tests) never see each other's datasets."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.catalog.charts import ChartCache
from app.catalog.counts import FacetIndexes
from app.catalog.orders import NumericOrders


@dataclass
class Catalog:
    indexes: FacetIndexes = field(default_factory=FacetIndexes)
    charts: ChartCache = field(default_factory=ChartCache)
    orders: NumericOrders = field(default_factory=NumericOrders)

    def forget(self) -> None:
        """Drop every cached index, numeric order and chart (they are rebuilt on next use)."""
        self.indexes.forget()
        self.charts.forget()
        self.orders.forget()
