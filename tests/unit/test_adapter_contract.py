"""The adapter contract (app.datasets.base.DatasetAdapter): every registered adapter subclasses the base and its
declarations are consistent with each other, so the catalog, pages and model checks can trust them without
probing or comparing kind names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.dialects import sqlite

from app.catalog.sorting import allowed_sorts, numeric_expression
from app.datasets.base import (
    CHART_KINDS,
    MEASURING_TOOLS,
    ChartSpec,
    DatasetAdapter,
    Image2D,
    ItemRef,
    NotAVolume,
    NumericSort,
    View,
)
from app.datasets.facets import COLUMN_FACETS, LINKS
from app.datasets.registry import ADAPTER_PATHS, adapters, get_adapter
from app.datasets.volumes import VolumeCache
from app.db.models import Item
from app.inference.card import ModelCardError, card_from_dict
from app.inference.tasks import task_misfit

KINDS = list(adapters())


def test_every_registered_kind_is_available_and_subclasses_the_base():
    assert list(ADAPTER_PATHS) == KINDS
    for kind in KINDS:
        adapter = get_adapter(kind)
        assert isinstance(adapter, DatasetAdapter) and adapter.kind == kind


def test_the_base_cannot_be_used_without_the_abstract_methods():
    class Partial(DatasetAdapter):
        kind = "partial"

        def detect(self, root: Path) -> bool:
            return False

    with pytest.raises(TypeError, match="abstract"):
        Partial()  # type: ignore[abstract]


@pytest.mark.parametrize("kind", KINDS)
def test_facet_declarations_are_consistent(kind):
    a = get_adapter(kind)
    fields = set(a.facet_fields)
    assert len(fields) == len(a.facet_fields) and fields, "facet_fields: unique, at least one"
    assert not fields & set(a.filter_fields), "a field is a facet or a filter, not both"
    assert set(a.facet_order) <= fields, "facet_order names facet fields"
    assert set(a.facet_labels) <= fields | {"label"}, "facet_labels name facet fields"
    assert set(a.link_facets) <= fields and set(a.link_facets.values()) <= set(LINKS)
    assert a.label_facet in fields | {"label"}
    assert all(isinstance(v, str) for names in a.facet_labels.values() for v in names.values())


@pytest.mark.parametrize("kind", KINDS)
def test_numeric_sorts_resolve_to_sql(kind):
    a = get_adapter(kind)
    for name, spec in a.numeric_sorts.items():
        assert isinstance(spec, NumericSort)
        assert name not in COLUMN_FACETS and name not in ("id", "key")
        if spec.column is not None:
            assert spec.column in Item.__table__.c, f"{name}: no item column {spec.column!r}"
        sql = str(numeric_expression(spec).compile(dialect=sqlite.dialect()))
        assert sql, name
        assert name in allowed_sorts(kind)


def test_a_numeric_sort_reads_exactly_one_place():
    with pytest.raises(ValueError):
        NumericSort()
    with pytest.raises(ValueError):
        NumericSort(column="age", meta="age")


@pytest.mark.parametrize("kind", KINDS)
def test_charts_reference_declared_facets_and_sorts(kind):
    a = get_adapter(kind)
    assert a.charts, "every kind offers at least one chart"
    for spec in a.charts:
        assert isinstance(spec, ChartSpec) and spec.kind in CHART_KINDS and spec.title
        if spec.kind == "crosstab":
            assert spec.rows and spec.cols and set(spec.facets()) <= set(a.facet_fields), spec
        if spec.kind == "counts":
            assert spec.rows in a.facet_fields, spec
        if spec.kind == "histogram":
            assert spec.value in a.numeric_sorts, f"{spec.title}: histogram of an undeclared numeric field"
            assert spec.group in COLUMN_FACETS, spec
            start, stop, step = spec.bins
            assert stop > start and step > 0
        if spec.kind in ("lesion_map",):
            assert spec.group in a.facet_fields


@pytest.mark.parametrize("kind", KINDS)
def test_viewer_and_model_capabilities_are_consistent(kind):
    a = get_adapter(kind)
    assert set(a.viewer.tools) <= set(MEASURING_TOOLS)
    assert a.viewer.centroid_slab_mm > 0 and a.viewer.label_gap_mm > 0
    assert not a.volume_only or a.has_volumes, "volume_only implies has_volumes"
    assert not a.viewer.spacing_maps_planes or a.has_volumes, "only volumes map planes"
    assert a.sheet_page_size is None or (a.sheet_page_size > 0 and a.sheet_page_size % 8 == 0)
    assert all(w for w in (a.wording.patient, a.wording.study, a.wording.series))


def test_pixel_defaults_of_a_2d_kind():
    """A kind that overrides only the abstract methods: no batched read (the pixel layer then reads and caches
    each item alone), not a volume (a clear NotAVolume naming the kind), no label volume."""

    class Tiny(DatasetAdapter):
        kind = "tiny"

        def detect(self, root: Path) -> bool:
            return False

        def scan(self, root, progress=None, work_dir=None):  # pragma: no cover - not used
            raise NotImplementedError

        def slices(self, item, plane):
            return []

        def read_image(self, item: ItemRef, view: View, volumes: VolumeCache) -> Image2D:
            return Image2D(np.full((2, 2), item.id, np.uint8))

        def overlay(self, item, annotations, view, image, volumes):  # pragma: no cover - not used
            raise NotImplementedError

    refs = [ItemRef(i, Path("/"), "x", None, {}) for i in (3, 5)]
    tiny, volumes = Tiny(), VolumeCache(1)
    assert tiny.read_images(refs) == [None, None]
    assert int(tiny.read_image(refs[0], View(), volumes).pixels[0, 0]) == 3
    with pytest.raises(NotAVolume, match="tiny items are 2-D images"):
        tiny.volume(refs[0], volumes)
    assert tiny.label_volume(refs[0], [], volumes) is None
    assert tiny.viewer_shapes({"annotations": []}) == [] and tiny.cache_images


def _card(task: str, applies_to: list[str], **input_changes) -> dict:
    dims = [8, 8, 8] if task == "segment3d" else [8, 8]
    spec = {"layout": "NCDHW" if task == "segment3d" else "NCHW", "size": dims, "channels": 1, **input_changes}
    output = {"kind": {"classify": "logits", "detect2d": "boxes"}.get(task, "mask_logits")}
    if task == "classify":
        output["classes"] = ["a", "b"]
    return {"name": "m", "task": task, "input": spec, "output": output, "applies_to": applies_to}


def test_card_applies_to_is_checked_against_the_registry():
    with pytest.raises(ModelCardError, match=r"applies_to: unknown dataset kind 'xray'; known kinds: "):
        card_from_dict(_card("classify", ["xray"]))


@pytest.mark.parametrize("kind", KINDS)
def test_card_checks_follow_the_adapters_declarations(kind):
    a = get_adapter(kind)
    ct = _card("segment2d" if not a.volume_only else "segment3d", [kind], window=[-100, 200])
    if a.values_are_hu:
        card_from_dict(ct)
    else:
        with pytest.raises(ModelCardError, match=rf"input.window: a CT window cannot apply to {kind}"):
            card_from_dict(ct)
    three_d = _card("segment3d", [kind])
    if a.has_volumes:
        assert task_misfit(card_from_dict(three_d), kind) is None
    else:
        with pytest.raises(ModelCardError, match=rf"applies_to: a segment3d model segments volumes, but {kind}"):
            card_from_dict(three_d)
    flat = _card("detect2d", [kind])
    if a.volume_only:
        with pytest.raises(ModelCardError, match=rf"applies_to: a detect2d model takes 2-D images, but {kind}"):
            card_from_dict(flat)
    else:
        assert task_misfit(card_from_dict(flat), kind) is None
