"""GET /api/datasets/{id}/charts: charts as data, drawn by static/js/charts.js (app.catalog.charts)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field


class BarSeries(BaseModel):
    name: str = Field(description="Display name of the series value.")
    key: str = Field(description="The series value itself.")
    values: list[int] = Field(description="Count per category.")


class BarsChart(BaseModel):
    """Stacked bars: `{categories, series: [{name, values}]}`."""

    kind: Literal["bars"]
    title: str
    axis: str = Field(description="The field the categories are values of.")
    categories: list[str]
    series: list[BarSeries]
    omitted: int = Field(description="Categories left out (only the largest are shown).")


class HistogramSeries(BaseModel):
    name: str
    counts: list[int] = Field(description="Count per bin (len(edges) - 1 bins).")


class HistogramChart(BaseModel):
    kind: Literal["histogram"]
    title: str
    unit: str = Field(description="Unit of the edges (mm, years, %).")
    edges: list[float]
    series: list[HistogramSeries]
    n: int = Field(description="Values counted.")


class ScatterChart(BaseModel):
    """Columnar points: point i is (x[i], y[i]) of group groups[group[i]], opening item item[i]."""

    kind: Literal["scatter"]
    title: str
    x_label: str
    y_label: str
    x: list[float]
    y: list[float]
    group: list[int] = Field(description="Index into `groups`, per point.")
    item: list[int] = Field(description="Item id, per point.")
    groups: list[str]
    n: int


Chart = Annotated[BarsChart | HistogramChart | ScatterChart, Field(discriminator="kind")]


class DatasetCharts(BaseModel):
    dataset_id: int
    kind: str = Field(description="The dataset's kind.")
    charts: list[Chart]
