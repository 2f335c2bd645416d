"""Plain NIfTI folders (`nifti`) end to end, on both databases: detection, ingest of each pairing layout (nnU-Net,
images/ + labels/, `_seg` beside), pairing problems (each named, the neighbours indexed), plane renders against
nibabel with the label map drawn where the file says, the real CT sample, export round trip; and VerSe releases
with derivatives but no CT, viewable as labels."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest
from sqlalchemy.orm import Session

from app.cli import main as cli_main
from app.datasets.base import IngestError
from app.datasets.ingest import ingest_path
from app.datasets.nifti.colours import colour
from app.datasets.nifti.synth import generate_nifti
from app.datasets.registry import detect_kind
from app.datasets.verse.labels import PALETTE, TEXT_COLOURS
from app.datasets.verse.synth import generate_verse
from app.db.models import Dataset

WINDOW = (-1000.0, 2000.0)


@pytest.fixture(scope="session")
def nifti_samples(tmp_path_factory):
    """One generated sample per layout (shared: tests must not modify them)."""
    base = tmp_path_factory.mktemp("nifti")
    return {layout: generate_nifti(base / layout, layout=layout, seed=3) for layout in ("nnunet", "folders", "suffix")}


def items_by_key(client, dataset_id: int) -> dict[str, dict]:
    listing = client.get(f"/api/datasets/{dataset_id}/items", params={"limit": 500}).json()["items"]
    return {i["key"]: client.get(f"/api/items/{i['id']}").json() for i in listing}


def expected_plane(path: Path, plane: str, index: int, window=WINDOW, labels: bool = False) -> np.ndarray:
    """The display image computed independently with nibabel: canonical, sliced, oriented, square pixels."""
    img = nib.as_closest_canonical(nib.load(str(path)))
    vol = np.asanyarray(img.dataobj).astype(np.float32)
    spacing = np.sqrt((img.affine[:3, :3] ** 2).sum(axis=0))
    cut, (row_mm, col_mm) = {
        "axial": lambda: (vol[:, :, index], (spacing[1], spacing[0])),
        "coronal": lambda: (vol[:, index, :], (spacing[2], spacing[0])),
        "sagittal": lambda: (vol[index, :, :], (spacing[2], spacing[1])),
    }[plane]()
    view = np.ascontiguousarray(cut.T[::-1, ::-1])
    pixel = min(row_mm, col_mm)
    size = (round(view.shape[1] * col_mm / pixel), round(view.shape[0] * row_mm / pixel))
    if size != (view.shape[1], view.shape[0]):
        view = cv2.resize(view, size, interpolation=cv2.INTER_NEAREST if labels else cv2.INTER_LINEAR)
    if labels:
        return view.astype(np.uint8)
    low, high = window
    return np.rint(np.clip((view - low) / (high - low), 0, 1) * 255)


def render(client, item_id: int, **params) -> np.ndarray:
    r = client.get(f"/api/items/{item_id}/render", params={"format": "png", **params})
    assert r.status_code == 200, r.text
    return cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_UNCHANGED)


def test_detection(tmp_path, nifti_samples):
    for layout, sample in nifti_samples.items():
        assert detect_kind(sample.root) == "nifti", layout
    verse = generate_verse(tmp_path / "verse", subjects=1, seed=1)
    assert detect_kind(verse.root) == "verse"  # VerSe's layout stays VerSe
    shutil.rmtree(verse.root / "rawdata")
    assert detect_kind(verse.root) == "verse"  # derivatives only: still VerSe (its mask naming)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no volumes here\n")
    with pytest.raises(Exception, match="not a dataset MedView recognises"):
        detect_kind(tmp_path / "empty")


def test_nnunet_layout(engine, settings, client, nifti_samples):
    sample = nifti_samples["nnunet"]
    report = ingest_path(engine, settings, sample.root, name="nnunet")  # detected: no --kind
    assert report.kind == "nifti" and report.problems == []
    assert (report.items, report.annotations) == (4, 3)
    items = items_by_key(client, report.dataset_id)
    assert set(items) == {c.key for c in sample.cases}
    first = items["case_000"]
    assert first["split"] == "train" and first["meta"]["layout"] == "nnunet"
    assert first["meta"]["image"] == "imagesTr/case_000_0000.nii.gz"
    assert first["meta"]["channels"] == ["imagesTr/case_000_0001.nii.gz"]
    assert first["meta"]["channel_names"] == ["CT", "MR"]
    assert first["meta"]["labels"] == ["organ", "lesion"] and first["label"] == "organ, lesion"  # dataset.json
    assert (first["width"], first["height"], first["depth"]) == (40, 36, 24)
    [mask] = first["annotations"]
    assert mask["kind"] == "mask" and mask["geometry"] == {"mask": "labelsTr/case_000.nii.gz"}
    test_case = items["case_003"]
    assert test_case["split"] == "test" and test_case["annotations"] == [] and test_case["meta"]["label_map"] is None
    facets = client.get(f"/api/datasets/{report.dataset_id}").json()["facets"]
    assert facets["split"] == {"train": 3, "test": 1}
    assert facets["has_labels"] == {"yes": 3, "no": 1}
    assert facets["labels"] == {"organ": 3, "lesion": 2}
    assert facets["spacing_band"] == {"2–3 mm": 3, "3–5 mm": 1}
    assert facets["channels"] == {"2": 4}


@pytest.mark.parametrize("layout", ["folders", "suffix"])
def test_folder_and_suffix_layouts(engine, settings, client, nifti_samples, layout):
    sample = nifti_samples[layout]
    report = ingest_path(engine, settings, sample.root, name=layout)
    assert report.kind == "nifti" and report.problems == []
    items = items_by_key(client, report.dataset_id)
    for case in sample.cases:
        item = items[case.key]
        labels = [a for a in item["annotations"] if a["kind"] == "mask"]
        if case.label is None:
            assert labels == [] and item["meta"]["label_values"] == []
        else:
            assert labels[0]["geometry"]["mask"] == case.label.relative_to(sample.root).as_posix()
            assert item["meta"]["label_values"] == case.labels
            assert item["meta"]["labels"] == [f"label {n}" for n in case.labels]  # no dataset.json: numbers
        assert item["split"] == case.split and item["meta"]["layout"] == layout
    assert report.items == len(sample.cases)


@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
def test_planes_and_mask_overlay_match_nibabel(engine, settings, client, nifti_samples, plane):
    sample = nifti_samples["folders"]
    report = ingest_path(engine, settings, sample.root, name="planes")
    items = items_by_key(client, report.dataset_id)
    case = sample.by_key("case_001")  # stored LPS: the viewer must turn it to the canonical frame
    item = items[case.key]
    index = item["meta"]["planes"][plane] // 2
    got = render(client, item["id"], plane=plane, slice=index, overlays="none", window="-1000,2000")
    want = expected_plane(case.image, plane, index)
    assert got.shape[:2] == want.shape and np.abs(got.astype(float) - want).max() <= 1
    labels = expected_plane(case.label, plane, index, labels=True)
    assert (labels == 1).sum() > 10, "the chosen slice cuts the organ"
    shown = render(client, item["id"], plane=plane, slice=index, overlays="gt", opacity=1)
    rows, cols = np.nonzero(labels == 1)
    hits = (shown[rows, cols] == colour(1)[::-1]).all(axis=-1).mean()  # BGR from cv2
    assert hits > 0.95, hits
    rows, cols = np.nonzero(labels == 0)
    assert not (shown[rows, cols] == colour(1)[::-1]).all(axis=-1).any()  # nothing drawn outside the organ
    r = client.get(f"/api/items/{item['id']}/mask", params={"plane": plane, "slice": index})
    assert r.status_code == 200 and "1:" in r.headers["X-Palette"]
    mask = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_UNCHANGED)
    assert (mask == labels).all()


def copy_sample(sample, tmp_path: Path) -> Path:
    root = tmp_path / sample.root.name
    shutil.copytree(sample.root, root)
    return root


def test_pairing_problems_name_the_file_and_index_the_neighbours(engine, settings, client, nifti_samples,
                                                                 tmp_path):
    root = copy_sample(nifti_samples["nnunet"], tmp_path)
    shutil.copy(root / "labelsTr/case_000.nii.gz", root / "labelsTr/case_099.nii.gz")  # no image of that case
    small = nib.Nifti1Image(np.zeros((5, 5, 5), np.uint8), np.eye(4))
    nib.save(small, str(root / "labelsTr/case_001.nii.gz"))  # the wrong shape
    (root / "labelsTr/case_002.nii.gz").unlink()  # a training case without its label map
    (root / "imagesTs/case_003_0000.nii.gz").write_text("not a volume\n")
    report = ingest_path(engine, settings, root, name="problems")
    by_file = {p.file: p for p in report.problems}
    assert "label map without an image" in by_file["labelsTr/case_099.nii.gz"].message
    assert "imagesTr/case_099_0000.nii.gz" in by_file["labelsTr/case_099.nii.gz"].message
    grid = by_file["labelsTr/case_001.nii.gz"]
    assert grid.item == "case_001" and grid.field == "grid" and "shape 5×5×5 vs the image's 32×40×20" in grid.message
    assert "no label map" in by_file["imagesTr/case_002_0000.nii.gz"].message
    broken = by_file["imagesTs/case_003_0000.nii.gz"]
    assert broken.item == "case_003" and "not a readable NIfTI file" in broken.message
    items = items_by_key(client, report.dataset_id)
    assert set(items) == {"case_000", "case_001", "case_002"}
    assert items["case_001"]["annotations"] == [] and items["case_001"]["meta"]["label_shown"] is False
    assert render(client, items["case_001"]["id"], overlays="gt").size  # the image still shows
    stored = client.get(f"/api/datasets/{report.dataset_id}").json()["problems"]
    assert {p["file"] for p in stored} == set(by_file)


def test_suffix_problems(engine, settings, nifti_samples, tmp_path):
    root = copy_sample(nifti_samples["suffix"], tmp_path)
    shutil.copy(root / "case_000_seg.nii.gz", root / "case_000_label-2.nii.gz")  # a second label map
    shutil.copy(root / "case_000_seg.nii.gz", root / "lonely_seg.nii.gz")  # no lonely.nii.gz
    report = ingest_path(engine, settings, root, name="suffix-problems")
    by_file = {p.file: p for p in report.problems}
    assert "second label map" in by_file["case_000_label-2.nii.gz"].message
    assert "case_000_seg.nii.gz is used" in by_file["case_000_label-2.nii.gz"].message
    assert "label map without an image" in by_file["lonely_seg.nii.gz"].message
    assert report.items == 3


def test_bad_dataset_json_is_a_problem_and_labels_are_numbered(engine, settings, client, nifti_samples, tmp_path):
    root = copy_sample(nifti_samples["nnunet"], tmp_path)
    (root / "dataset.json").write_text("{\"labels\": {\"organ\": 1,")
    report = ingest_path(engine, settings, root, name="bad-json")
    [problem] = report.problems
    assert problem.file == "dataset.json" and "not valid JSON" in problem.message
    item = items_by_key(client, report.dataset_id)["case_000"]
    assert item["meta"]["labels"] == ["label 1", "label 2"]


def test_nothing_usable_fails_whole(engine, settings, tmp_path):
    root = tmp_path / "broken"
    root.mkdir()
    (root / "a.nii.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(IngestError, match="none of the 1 NIfTI files is a readable volume") as exc:
        ingest_path(engine, settings, root, kind="nifti", name="broken")
    assert exc.value.problems[0].file == "a.nii.gz"


def test_float_image_gets_a_display_scale(engine, settings, client, tmp_path):
    """A normalised MR (floats in 0–1) keeps its contrast: scaled for display, windowed on its own range."""
    root = tmp_path / "mr"
    root.mkdir()
    rng = np.random.default_rng(0)
    data = np.zeros((20, 20, 10), np.float32)
    data[5:15, 5:15] = 0.6
    data += rng.uniform(0, 0.05, data.shape).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(root / "brain.nii.gz"))
    report = ingest_path(engine, settings, root, name="mr")
    [item] = items_by_key(client, report.dataset_id).values()
    assert item["meta"]["display_scale"] > 100 and item["meta"]["modality"] == "OT"  # not HU
    got = render(client, item["id"], plane="axial", slice=5, overlays="none")
    assert got[10, 10] > 200 and got[1, 1] < 60  # the square bright, the background dark


@pytest.mark.realdata
def test_real_ct(engine, settings, client, realdata):
    root = realdata("nifti_ct")
    assert detect_kind(root) == "nifti"  # a lone CT is no longer an unknown folder
    report = ingest_path(engine, settings, root, name="real-nifti")
    assert (report.kind, report.items, report.problems) == ("nifti", 1, [])
    [item] = items_by_key(client, report.dataset_id).values()
    assert item["window"] == [-175.0, 275.0] and "CT" in item["meta"]["window_source"]
    assert item["meta"]["modality"] == "CT"
    for plane in ("axial", "coronal", "sagittal"):
        index = item["meta"]["planes"][plane] // 2
        got = render(client, item["id"], plane=plane, slice=index, overlays="gt", window="-1000,2000")
        want = expected_plane(root / "example_ct.nii.gz", plane, index)
        assert got.shape[:2] == want.shape and np.abs(got.astype(float) - want).max() <= 1


def test_export_round_trip(engine, settings, client, nifti_samples, tmp_path, monkeypatch, capsys):
    for name in ("database_url", "data_dir", "data_roots"):
        monkeypatch.setenv(f"MEDVIEW_{name.upper()}", str(getattr(settings, name)))
    sample = nifti_samples["suffix"]
    ingest_path(engine, settings, sample.root, name="to-export")
    out = tmp_path / "out"
    assert cli_main(["export", "--dataset", "to-export", "--format", "nifti", "--quiet", str(out)]) == 0
    for case in sample.cases:
        assert (out / f"imagesTr/{case.key}_0000.nii.gz").read_bytes() == case.image.read_bytes()
        written = nib.load(out / f"labelsTr/{case.key}.nii.gz")
        original = nib.load(case.label)
        assert np.allclose(written.affine, original.affine)
        assert (np.asanyarray(written.dataobj) == np.asanyarray(original.dataobj)).all()
    again = ingest_path(engine, settings, out, name="re-ingested")
    assert (again.kind, again.items, again.annotations, again.problems) == ("nifti", 3, 3, [])


# -- VerSe with derivatives but no CT --------------------------------------------------------------------------

def test_verse_derivatives_only(engine, settings, client, tmp_path):
    sample = generate_verse(tmp_path / "verse", subjects=2, seed=9)
    shutil.rmtree(sample.root / "rawdata")
    report = ingest_path(engine, settings, sample.root, name="verse-labels")  # detected as verse
    assert report.kind == "verse" and report.items == 2 and report.problems == []
    with Session(engine) as session:
        assert session.get(Dataset, report.dataset_id).options["layout"] == "derivatives only"
    items = items_by_key(client, report.dataset_id)
    for truth in sample.subjects:
        item = items[truth.key]
        assert item["meta"]["label_only"] is True and item["meta"]["ct"] is None
        assert item["meta"]["mask"] == truth.mask.relative_to(sample.root).as_posix()
        centroids = [a for a in item["annotations"] if a["kind"] == "centroid"]
        assert sorted(int(a["label"]) for a in centroids) == sorted(truth.labels)  # from the centroid file
        assert item["meta"]["vertebrae_source"] == "ctd"
    truth = sample.subjects[0]
    item = items[truth.key]
    index = item["width"] // 2
    plain = render(client, item["id"], plane="sagittal", slice=index, overlays="none")
    labels = np.asanyarray(nib.as_closest_canonical(nib.load(str(truth.mask))).dataobj)
    shown = render(client, item["id"], plane="sagittal", slice=index, overlays="gt", opacity=1)
    cut = labels[index].T[::-1, ::-1]
    if cut.shape != plain.shape[:2]:
        cut = cv2.resize(cut.astype(np.uint8), plain.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    assert (plain[cut == 0] == 0).mean() > 0.95  # black background where no vertebra
    visible = [n for n in truth.labels if (cut == n).sum() > 20]
    assert visible
    for n in visible:
        rows, cols = np.nonzero(cut == n)
        assert (shown[rows, cols] == PALETTE[n][::-1]).all(axis=-1).mean() > 0.6, n
    assert any((shown == TEXT_COLOURS[n][::-1]).all(axis=-1).any() for n in visible)  # the names are drawn


def test_verse_derivatives_only_export(engine, settings, tmp_path, monkeypatch):
    """The `nifti` export of a label-only item writes its mask back under its own name (no CT to copy) with its
    centroids beside it, and that folder ingests again as the same label-only subject."""
    for name in ("database_url", "data_dir", "data_roots"):
        monkeypatch.setenv(f"MEDVIEW_{name.upper()}", str(getattr(settings, name)))
    sample = generate_verse(tmp_path / "verse", subjects=1, seed=2)
    shutil.rmtree(sample.root / "rawdata")
    ingest_path(engine, settings, sample.root, name="labels-export")
    out = tmp_path / "out"
    assert cli_main(["export", "--dataset", "labels-export", "--format", "nifti", "--quiet", str(out)]) == 0
    truth = sample.subjects[0]
    mask_rel = truth.mask.relative_to(sample.root)
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.suffix != ".csv")
    assert mask_rel.as_posix() in written and not any("_ct.nii" in p for p in written)
    original = nib.load(truth.mask)
    assert (np.asanyarray(nib.load(out / mask_rel).dataobj) == np.asanyarray(original.dataobj)).all()
    again = ingest_path(engine, settings, out, name="labels-again")
    assert (again.kind, again.items, again.problems) == ("verse", 1, [])


@pytest.mark.realdata
def test_real_verse_derivatives_only(engine, settings, client, realdata, tmp_path):
    root = tmp_path / "verse-derivatives"
    shutil.copytree(realdata("verse") / "derivatives", root / "derivatives")
    report = ingest_path(engine, settings, root, name="real-labels")
    assert (report.kind, report.items, report.problems) == ("verse", 1, [])
    [item] = items_by_key(client, report.dataset_id).values()
    mask = "derivatives/sub-ct/sub-ct_seg-vert_label-22_msk.nii.gz"  # never the sub-region mask
    assert item["meta"]["mask"] == mask and item["meta"]["vertebrae"] == ["L2", "L3", "L4"]
    labels = np.asanyarray(nib.as_closest_canonical(nib.load(str(root / mask))).dataobj)
    shown = render(client, item["id"], plane="sagittal", slice=40, overlays="gt", opacity=1)
    cut = labels[40].T[::-1, ::-1].copy()
    cut[:, :30] = 0  # the names sit at the anterior edge
    for n in (21, 22, 23):
        rows, cols = np.nonzero(cut == n)
        assert (shown[rows, cols] == PALETTE[n][::-1]).all(axis=-1).mean() > 0.8, n


def test_label_map_plane_edit(engine, settings, client, nifti_samples):
    """An annotator replaces one axial plane of a label map: the app stores the whole volume with exactly that
    plane changed, the overlay shows it, the dataset's file is untouched; a bad plane is a 400 naming the field."""
    import base64
    import io

    from PIL import Image

    from app.datasets.verse.nifti import load_labels
    from app.imaging.labels import decode_label_png
    from app.imaging.volume import display_plane
    from tests.helpers.auth import api_token

    sample = nifti_samples["suffix"]
    report = ingest_path(engine, settings, sample.root, name="edit")
    item = items_by_key(client, report.dataset_id)["case_000"]
    [ann] = item["annotations"]
    original = load_labels(sample.root / ann["geometry"]["mask"])
    index = item["meta"]["planes"]["axial"] // 2
    changed = original.data.copy()
    changed[:, :, index] = 0
    changed[5:15, 5:15, index] = 7  # a new label value, painted
    upload, _ = display_plane(changed, original.spacing, "axial", index, labels=True)
    buffer = io.BytesIO()
    Image.fromarray(upload.astype(np.uint8)).save(buffer, "PNG")
    annotator = {"Authorization": f"Bearer {api_token(settings, 'ann', 'annotator')}"}
    geometry = {"png": base64.b64encode(buffer.getvalue()).decode(), "plane": "axial", "slice": index}
    r = client.put(f"/api/annotations/{ann['id']}", headers=annotator, json={"version": 1, "geometry": geometry})
    assert r.status_code == 200, r.text
    stored = np.load(settings.data_dir / "masks" / r.json()["geometry"]["stored"])["labels"]
    assert np.array_equal(stored, changed)
    shown = client.get(f"/api/items/{item['id']}/mask", params={"plane": "axial", "slice": index})
    assert np.array_equal(decode_label_png(shown.content), upload) and "7:" in shown.headers["X-Palette"]
    rendered = render(client, item["id"], plane="axial", slice=index, overlays="gt", opacity=1)
    rows, cols = np.nonzero(upload == 7)
    assert (rendered[rows, cols] == colour(7)[::-1]).all(axis=-1).mean() > 0.95
    assert np.array_equal(load_labels(sample.root / ann["geometry"]["mask"]).data, original.data)
    r = client.put(f"/api/annotations/{r.json()['id']}", headers=annotator,
                   json={"version": r.json()["version"], "geometry": {**geometry, "plane": "oblique"}})
    assert r.status_code == 400 and "geometry.plane" in r.json()["detail"]
