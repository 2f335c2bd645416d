"""VerSe end to end: ingest of generated and real samples, plane renders against nibabel, overlays, bad input,
the volume cache and the viewer page. Expected images are computed here from `nib.as_closest_canonical`, oriented
as API.md says (radiological; superior and anterior as stated) and resampled to square millimetre pixels."""

from __future__ import annotations

import gzip
import html
import json
import re
import shutil
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest

from app.datasets.base import Problem
from app.datasets.ingest import ingest_path
from app.datasets.registry import detect_kind
from app.datasets.verse.labels import NAMES, PALETTE, TEXT_COLOURS
from app.datasets.verse.synth import generate_verse

WINDOW = (-1000.0, 2000.0)


@pytest.fixture(scope="session")
def verse_sample(tmp_path_factory):
    """Four subjects in the VerSe'20 layout with split folders (shared: tests must not modify it)."""
    return generate_verse(tmp_path_factory.mktemp("verse") / "verse20", subjects=4, layout="bids", seed=7,
                          splits=True)


@pytest.fixture
def tree(tmp_path, verse_sample) -> Path:
    root = tmp_path / "verse20"
    shutil.copytree(verse_sample.root, root)
    return root


@pytest.fixture
def verse_ds(engine, settings, verse_sample):
    return ingest_path(engine, settings, verse_sample.root, kind="verse", name="verse")


def items_by_key(client, dataset_id: int) -> dict[str, dict]:
    listing = client.get(f"/api/datasets/{dataset_id}/items", params={"limit": 500}).json()["items"]
    return {i["key"]: client.get(f"/api/items/{i['id']}").json() for i in listing}


def expected_plane(ct_path: Path, plane: str, index: int, window=WINDOW) -> np.ndarray:
    """The display image computed independently: canonical array, sliced, oriented, square pixels, windowed."""
    img = nib.as_closest_canonical(nib.load(str(ct_path)))
    vol = np.asanyarray(img.dataobj).astype(np.float32)
    spacing = np.sqrt((img.affine[:3, :3] ** 2).sum(axis=0))
    # every plane: rows run superior→inferior (or anterior→posterior), columns patient right→left or
    # anterior→posterior, i.e. the transposed slice flipped both ways
    cut, (row_mm, col_mm) = {
        "axial": (vol[:, :, index], (spacing[1], spacing[0])),
        "coronal": (vol[:, index, :], (spacing[2], spacing[0])),
        "sagittal": (vol[index, :, :], (spacing[2], spacing[1])),
    }[plane]
    view = np.ascontiguousarray(cut.T[::-1, ::-1])
    pixel = min(row_mm, col_mm)
    size = (round(view.shape[1] * col_mm / pixel), round(view.shape[0] * row_mm / pixel))
    if size != (view.shape[1], view.shape[0]):
        view = cv2.resize(view, size, interpolation=cv2.INTER_LINEAR)
    low, high = window
    return np.rint(np.clip((view - low) / (high - low), 0, 1) * 255)


def render(client, item_id: int, **params) -> np.ndarray:
    r = client.get(f"/api/items/{item_id}/render", params={"format": "png", **params})
    assert r.status_code == 200, r.text
    return cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_UNCHANGED)


def test_detects_both_layouts(tmp_path, verse_sample):
    flat = generate_verse(tmp_path / "flat", subjects=3, layout="flat", seed=1)
    assert detect_kind(verse_sample.root) == detect_kind(flat.root) == "verse"


def test_ingest_counts_facets_and_geometry(client, verse_ds, verse_sample):
    truth = verse_sample.subjects
    with_mask = [s for s in truth if not s.mask_mismatch]
    assert verse_ds.items == len(truth)
    assert verse_ds.annotations == len(with_mask) + sum(len(s.labels) for s in truth)
    [problem] = verse_ds.problems  # only the subject whose mask is on another grid
    bad = next(s for s in truth if s.mask_mismatch)
    assert problem.item == bad.key and problem.file == bad.mask.relative_to(verse_sample.root).as_posix()
    assert "not on one voxel grid" in problem.message and problem.field == "grid"
    ds = client.get(f"/api/datasets/{verse_ds.dataset_id}").json()
    splits: dict[str, int] = {}
    vertebrae: dict[str, int] = {}
    for s in truth:
        splits[s.split] = splits.get(s.split, 0) + 1
        for label in s.labels:
            vertebrae[NAMES[label]] = vertebrae.get(NAMES[label], 0) + 1
    assert ds["facets"]["split"] == splits
    assert ds["facets"]["vertebra"] == dict(sorted(vertebrae.items()))
    assert ds["facets"]["vertebra_count"] == {"7": len(truth)}
    assert ds["facets"]["ground_truth"] == {"centroids": len(truth), "mask": len(with_mask)}
    items = items_by_key(client, verse_ds.dataset_id)
    for s in truth:
        item = items[s.key]
        assert (item["width"], item["height"], item["depth"]) == s.canonical_shape
        assert item["spacing"] == pytest.approx(s.canonical_spacing)
        assert item["window"] == [-450.0, 1050.0] and item["kind"] == "volume" and item["split"] == s.split
        assert item["patient"] == s.subject and item["meta"]["axcodes"] == list(s.axcodes)
        assert item["meta"]["vertebrae"] == [NAMES[n] for n in s.labels]
        masks = [a for a in item["annotations"] if a["kind"] == "mask"]
        assert [a["geometry"]["mask"] for a in masks] == ([] if s.mask_mismatch else
                                                          [s.mask.relative_to(verse_sample.root).as_posix()])
        points = {int(a["label"]): a for a in item["annotations"] if a["kind"] == "centroid"}
        assert sorted(points) == sorted(s.labels)
        for label, centre in s.centroids.items():  # ctd frame → canonical voxels, vs the truth
            assert points[label]["geometry"]["point"] == pytest.approx(centre, abs=0.02)
            assert points[label]["meta"]["name"] == NAMES[label]


def test_flat_layouts_and_reingest(engine, settings, client, tmp_path):
    flat = generate_verse(tmp_path / "verse19", subjects=3, layout="flat", seed=3)
    report = ingest_path(engine, settings, flat.root, kind="verse", name="verse19")
    assert report.items == 3 and [p.item for p in report.problems] == ["sub-verse006"]
    items = items_by_key(client, report.dataset_id)
    assert set(items) == {"sub-verse004", "verse005", "sub-verse006"}
    masks = {k: [a["geometry"]["mask"] for a in i["annotations"] if a["kind"] == "mask"] for k, i in items.items()}
    # the seg-subreg mask beside sub-verse004 is never taken for the vertebra mask
    assert masks == {"sub-verse004": ["sub-verse004_seg-vert_msk.nii.gz"], "verse005": ["verse005_seg.nii.gz"],
                     "sub-verse006": []}
    assert items["sub-verse004"]["meta"]["other_masks"] == ["sub-verse004_seg-subreg_msk.nii.gz"]
    again = ingest_path(engine, settings, flat.root, kind="verse", name="verse19")
    assert (again.items, again.unchanged, again.added, again.annotations) == (3, 3, 0, report.annotations)


@pytest.mark.parametrize("plane", ["sagittal", "coronal", "axial"])
@pytest.mark.parametrize("subject", [0, 1])  # P-I-R oblique 1×1×2 mm; L-P-S uint16 with scl_inter −1024
def test_planes_match_nibabel(client, verse_ds, verse_sample, plane, subject):
    truth = verse_sample.subjects[subject]
    item = items_by_key(client, verse_ds.dataset_id)[truth.key]
    count = {"sagittal": item["width"], "coronal": item["height"], "axial": item["depth"]}[plane]
    for index in (count // 3, None):
        got = render(client, item["id"], plane=plane, overlays="none", window="-1000,2000",
                     **({} if index is None else {"slice": index}))
        want = expected_plane(truth.ct, plane, count // 2 if index is None else index)
        assert got.shape == want.shape
        assert np.abs(got.astype(np.float64) - want).max() <= 1


def test_centroid_label_lands_on_its_vertebra(client, verse_ds, verse_sample):
    truth = verse_sample.subjects[0]  # P-I-R, oblique, 1×1×2 mm: sagittal rows are resampled ×2
    item = items_by_key(client, verse_ds.dataset_id)[truth.key]
    nj, nk = item["height"], item["depth"]
    _, sj, sk = item["spacing"]
    pixel = min(sj, sk)
    for label in truth.labels[1:-1]:
        i, j, k = truth.centroids[label]
        r = client.get(f"/api/items/{item['id']}/render", params={
            "format": "png", "plane": "sagittal", "slice": round(i), "overlays": "gt", "opacity": 1})
        rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        x = (nj - 1 - j + 0.5) * sj / pixel - 0.5  # anterior on the left
        y = (nk - 1 - k + 0.5) * sk / pixel - 0.5  # superior at the top
        assert tuple(rgb[round(y), round(x)]) == PALETTE[label]
        # the name is written in the vertebra's text colour, anterior to the body at the centroid's height
        band = rgb[max(0, round(y) - 12):round(y) + 12, :round(x)]
        assert (band == TEXT_COLOURS[label]).all(axis=-1).sum() >= 5, NAMES[label]
    plain = render(client, item["id"], plane="sagittal", slice=2, overlays="gt", opacity=1)
    for n in truth.labels:  # far lateral, outside every vertebra: neither mask nor names
        assert not (plain == PALETTE[n][::-1]).all(axis=-1).any()
        assert not (plain == TEXT_COLOURS[n][::-1]).all(axis=-1).any()


@pytest.mark.realdata
def test_real_verse_sample(engine, settings, client, realdata):
    root = realdata("verse")
    report = ingest_path(engine, settings, root, kind="verse", name="real-verse")
    assert (report.items, report.problems) == (1, [])
    [item] = items_by_key(client, report.dataset_id).values()
    img = nib.load(str(root / "rawdata/sub-ct/sub-ct_label-22_ct.nii.gz"))
    canonical = nib.as_closest_canonical(img)
    assert item["key"] == "sub-ct" and item["meta"]["axcodes"] == list(nib.aff2axcodes(img.affine)) == ["P", "I", "R"]
    assert (item["width"], item["height"], item["depth"]) == canonical.shape == (73, 73, 47)
    assert item["spacing"] == pytest.approx([1.5, 1.5, 1.5])
    [mask] = [a for a in item["annotations"] if a["kind"] == "mask"]
    assert mask["geometry"]["mask"] == "derivatives/sub-ct/sub-ct_seg-vert_label-22_msk.nii.gz"  # not seg-subreg
    assert item["meta"]["vertebrae"] == ["L2", "L3", "L4"] and item["meta"]["vertebrae_source"] == "mask"
    got = render(client, item["id"], plane="sagittal", slice=40, overlays="none", window="-1000,2000")
    want = expected_plane(root / "rawdata/sub-ct/sub-ct_label-22_ct.nii.gz", "sagittal", 40)
    assert got.shape == want.shape == (47, 73) and np.abs(got - want).max() <= 1
    labels = np.asanyarray(nib.as_closest_canonical(nib.load(str(root / mask["geometry"]["mask"]))).dataobj)
    overlay = render(client, item["id"], plane="sagittal", slice=40, overlays="gt", opacity=1)
    expected_labels = labels[40].T[::-1, ::-1]
    expected_labels[:, :30] = 0  # the names sit at the anterior (left) edge in this tight field of view
    for label in (21, 22, 23):  # where the mask says L3, the image is L3's colour
        rows, cols = np.nonzero(expected_labels == label)
        assert len(rows) > 20
        hits = (overlay[rows, cols] == PALETTE[label][::-1]).all(axis=-1).mean()
        assert hits > 0.8, (label, hits)


def ingest_ct_without_mask(engine, settings, client, root: Path) -> tuple[Problem, float]:
    """A lone CT volume, example_ct.nii.gz, with no mask or centroids beside it: (its one problem, the largest
    grey-level difference of its rendered coronal plane from the plane cut independently with nibabel)."""
    report = ingest_path(engine, settings, root, kind="verse", name="ct-only")
    assert (report.items, report.annotations) == (1, 0)
    [problem] = report.problems
    [item] = items_by_key(client, report.dataset_id).values()
    got = render(client, item["id"], plane="coronal", overlays="gt", window="-1000,2000")
    return problem, float(np.abs(got - expected_plane(root / "example_ct.nii.gz", "coronal",
                                                      item["height"] // 2)).max())


def test_ct_without_mask_is_indexed_with_a_problem(engine, settings, client, tmp_path, verse_sample):
    root = tmp_path / "nifti_ct"
    root.mkdir()
    shutil.copy(verse_sample.subjects[0].ct, root / "example_ct.nii.gz")  # a generated CT, alone
    problem, difference = ingest_ct_without_mask(engine, settings, client, root)
    assert problem.file == "example_ct.nii.gz" and "no vertebra mask" in problem.message and difference <= 1


@pytest.mark.realdata
def test_real_ct_without_mask_is_indexed_with_a_problem(engine, settings, client, realdata):
    problem, difference = ingest_ct_without_mask(engine, settings, client, realdata("nifti_ct"))
    assert problem.file == "example_ct.nii.gz" and "no vertebra mask" in problem.message and difference <= 1


def ingest_damaged(engine, settings, root: Path):
    report = ingest_path(engine, settings, root, kind="verse", name="damaged")
    assert report.items >= 3
    return report


def test_truncated_ct(engine, settings, tree, verse_sample):
    ct = tree / verse_sample.subjects[0].ct.relative_to(verse_sample.root)
    data = ct.read_bytes()
    ct.write_bytes(data[: len(data) // 2])
    report = ingest_damaged(engine, settings, tree)
    problem = next(p for p in report.problems if p.file.endswith("sub-verse004_ct.nii.gz"))
    assert problem.item == "sub-verse004" and "truncated" in problem.message
    assert report.items == 3


def test_ct_that_is_not_nifti(engine, settings, tree, verse_sample):
    ct = tree / verse_sample.subjects[1].ct.relative_to(verse_sample.root)
    ct.write_text("this is a note, not a CT\n")
    report = ingest_damaged(engine, settings, tree)
    problem = next(p for p in report.problems if p.item == "sub-verse005")
    assert problem.file == ct.relative_to(tree).as_posix() and "not a readable NIfTI file" in problem.message
    assert report.items == 3


def test_gzip_of_something_else(engine, settings, tree, verse_sample):
    ct = tree / verse_sample.subjects[1].ct.relative_to(verse_sample.root)
    ct.write_bytes(gzip.compress(b"\x00" * 1000))
    report = ingest_damaged(engine, settings, tree)
    assert any(p.item == "sub-verse005" and "not a readable NIfTI file" in p.message for p in report.problems)


def test_mask_grid_mismatch_still_renders(engine, settings, client, verse_ds, verse_sample):
    bad = next(s for s in verse_sample.subjects if s.mask_mismatch)
    item = items_by_key(client, verse_ds.dataset_id)[bad.key]
    assert [a["kind"] for a in item["annotations"]] == ["centroid"] * len(bad.labels)
    assert item["meta"]["mask_shown"] is False
    got = render(client, item["id"], plane="sagittal", overlays="gt", opacity=1)
    assert not any((got == PALETTE[n][::-1]).all(axis=-1).any() for n in bad.labels)  # no mask drawn


def test_centroids_without_direction(engine, settings, client, tree, verse_sample):
    truth = verse_sample.subjects[1]
    ctd = tree / truth.ctd.relative_to(verse_sample.root)
    ctd.write_text(json.dumps(json.loads(ctd.read_text())[1:]))
    report = ingest_damaged(engine, settings, tree)
    problem = next(p for p in report.problems if p.item == truth.key)
    assert problem.file == ctd.relative_to(tree).as_posix() and problem.field == "direction"
    assert "first element" in problem.message and report.items == 4
    item = items_by_key(client, report.dataset_id)[truth.key]
    # the vertebrae then come from the mask itself
    assert item["meta"]["vertebrae_source"] == "mask" and item["meta"]["vertebrae"] == [NAMES[n] for n in truth.labels]


def test_centroids_not_json(engine, settings, tree, verse_sample):
    truth = verse_sample.subjects[3]
    ctd = tree / truth.ctd.relative_to(verse_sample.root)
    ctd.write_text("{'label': 8, X: 1}")
    report = ingest_damaged(engine, settings, tree)
    problem = next(p for p in report.problems if p.item == truth.key)
    assert problem.file == ctd.relative_to(tree).as_posix() and "not valid JSON" in problem.message
    assert report.items == 4


def test_volume_cache_decompresses_once(client, verse_ds, verse_sample):
    item = items_by_key(client, verse_ds.dataset_id)[verse_sample.subjects[0].key]
    cache = client.app.state.pixels.volumes
    cache.clear()
    misses = cache.misses
    render(client, item["id"], plane="axial", slice=10, overlays="none")
    assert cache.misses > misses and len(cache) == 1  # first view: a miss, decompressed and kept
    misses, hits = cache.misses, cache.hits
    render(client, item["id"], plane="axial", slice=11, overlays="none")
    render(client, item["id"], plane="coronal", slice=3, overlays="none")
    assert (cache.misses - misses, cache.hits - hits, len(cache)) == (0, 2, 1)  # next views: no reload
    render(client, item["id"], plane="axial", slice=12, overlays="gt")  # the mask is a second entry
    assert len(cache) == 2


def viewer_state(body: str) -> dict:
    return json.loads(re.search(r'<script type="application/json" id="viewer-state">(.*?)</script>', body, re.S)
                      .group(1))


def test_viewer_page_has_planes(client, verse_ds, verse_sample):
    truth = verse_sample.subjects[0]
    item = items_by_key(client, verse_ds.dataset_id)[truth.key]
    body = client.get(f"/items/{item['id']}").text
    state = viewer_state(body)
    ni, nj, nk = truth.canonical_shape
    assert state["planes"] == {"axial": nk, "coronal": nj, "sagittal": ni} and state["plane"] == "sagittal"
    assert state["slice"] == state["key_slice"] == ni // 2 and state["slices"] == list(range(ni))
    assert state["window"] == [-450.0, 1050.0]
    for plane in ("axial", "coronal", "sagittal"):
        assert f'data-plane="{plane}"' in body
    src = html.unescape(re.search(r'id="slice-image" src="([^"]+)"', body).group(1))
    assert "plane=sagittal" in src and client.get(src).headers["x-slice"] == str(ni // 2)
    for n in truth.labels:
        assert f">{NAMES[n]}</td>" in body
    other = client.get(f"/items/{item['id']}?plane=axial&slice=5").text
    assert viewer_state(other)["plane"] == "axial" and viewer_state(other)["slices"] == list(range(nk))
    src = html.unescape(re.search(r'id="slice-image" src="([^"]+)"', other).group(1))
    assert src.endswith("&plane=axial&slice=5") and client.get(src).status_code == 200
    assert client.get(f"/items/{item['id']}?plane=oblique").status_code == 400
    assert "in the axial plane" in html.unescape(client.get(f"/items/{item['id']}?plane=axial&slice={nk}").text)


def test_vertebra_facet_in_anatomical_order(engine, settings, client, demo_samples):
    from app.datasets.verse import labels as vl

    report = ingest_path(engine, settings, demo_samples / "verse", kind="verse", name="order")  # the demo sample
    names = list(client.get(f"/api/datasets/{report.dataset_id}").json()["facets"]["vertebra"])
    spine = [vl.NAMES[label] for label in vl.SPINE_ORDER]
    assert len(names) > 3 and names == sorted(names, key=spine.index)
