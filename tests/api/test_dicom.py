"""DICOM folders: grouping and order checked against pydicom read directly, rendered planes against an
independent computation from the sorted pixel arrays, the real samples, and every kind of bad file."""

from __future__ import annotations

import gzip
import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.errors import InvalidDicomError
from pydicom.uid import generate_uid
from scipy import ndimage

from app.datasets.dicom.adapter import DicomAdapter
from app.datasets.dicom.synth import generate_dicom
from app.datasets.ingest import ingest_path
from app.datasets.registry import detect_kind

MPEG2 = "1.2.840.10008.1.2.4.100"


@pytest.fixture(scope="session")
def dicom_sample(tmp_path_factory):
    """The generated folder (shared by the session; tests must not modify it)."""
    return generate_dicom(tmp_path_factory.mktemp("dicom") / "export", seed=7)


@pytest.fixture
def tree(tmp_path, dicom_sample) -> Path:
    root = tmp_path / "export"
    shutil.copytree(dicom_sample.root, root)
    return root


@pytest.fixture
def ingested(engine, settings, dicom_sample):
    return ingest_path(engine, settings, dicom_sample.root, kind="dicom", name="sample")


def read_series(root: Path) -> dict[str, list[pydicom.Dataset]]:
    """Every image file under root read whole with pydicom, grouped by SeriesInstanceUID."""
    out: dict[str, list[pydicom.Dataset]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        try:
            ds = pydicom.dcmread(path)
        except InvalidDicomError:
            continue
        if "PixelData" in ds and ds.Modality != "RTSTRUCT":
            ds.rel = path.relative_to(root).as_posix()
            out.setdefault(ds.SeriesInstanceUID, []).append(ds)
    return out


def hu(ds: pydicom.Dataset) -> np.ndarray:
    return ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def frame_z(ds: pydicom.Dataset) -> list[float]:
    return [float(g.PlanePositionSequence[0].ImagePositionPatient[2]) for g in ds.PerFrameFunctionalGroupsSequence]


def grey(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """API.md's window: clip((HU − LOW) / (HIGH − LOW), 0, 1) · 255."""
    return np.rint(np.clip((values.astype(np.float64) - low) / (high - low), 0, 1) * 255).astype(np.uint8)


def square(view: np.ndarray, row_mm: float, col_mm: float) -> np.ndarray:
    """Resample to square pixels at the finer spacing (API.md: rendered pixels are square in mm)."""
    pixel = min(row_mm, col_mm)
    size = (round(view.shape[1] * col_mm / pixel), round(view.shape[0] * row_mm / pixel))
    if size == (view.shape[1], view.shape[0]):
        return view
    return cv2.resize(np.ascontiguousarray(view), size, interpolation=cv2.INTER_LINEAR)


def item_id(client, dataset_id: int, key: str) -> int:
    return client.get(f"/api/datasets/{dataset_id}/items", params={"key": key}).json()["items"][0]["id"]


def raw(client, item: int, **params) -> np.ndarray:
    r = client.get(f"/api/items/{item}/raw", params=params)
    assert r.status_code == 200, r.text
    body = r.content if r.content[:2] != b"\x1f\x8b" else gzip.decompress(r.content)
    shape = tuple(int(v) for v in r.headers["x-shape"].split(","))
    return np.frombuffer(body, "<i2").reshape(shape)


def png(client, item: int, **params) -> np.ndarray:
    r = client.get(f"/api/items/{item}/render", params={"format": "png", **params})
    assert r.status_code == 200, r.text
    return cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_UNCHANGED)


def test_detected_by_content_and_grouped_like_pydicom(client, ingested, dicom_sample):
    root = dicom_sample.root
    assert detect_kind(root) == "dicom"  # no file has a .dcm extension except the multi-frame one
    series = read_series(root)
    assert ingested.items == len(series) == 4
    texts = [str(p) for p in ingested.problems]
    assert any(dicom_sample.junk in t and "not a DICOM file" in t for t in texts)
    assert any(dicom_sample.rtstruct in t and "RTSTRUCT" in t and "skipped" in t for t in texts)
    assert len(texts) == 2
    ds = client.get(f"/api/datasets/{ingested.dataset_id}").json()
    assert ds["facets"]["modality"] == {"CT": 3, "MR": 1}
    assert ds["facets"]["plane"] == {"axial": 3, "sagittal": 1}
    assert ds["facets"]["sex"] == {"F": 2, "M": 2} and ds["facets"]["age"] == {"50-59": 2, "60-69": 2}
    for uid, files in series.items():
        detail = client.get(f"/api/items/{item_id(client, ingested.dataset_id, uid)}").json()
        first = files[0]
        assert detail["kind"] == "series" and detail["patient"] == first.PatientID
        assert detail["study"] == first.StudyInstanceUID
        if len(files) == 1:  # the multi-frame file: frames sorted by their own positions, inferior first
            assert detail["meta"]["frames"] == list(np.argsort(frame_z(first)))
            assert detail["depth"] == first.NumberOfFrames
            continue
        normal = np.cross([float(v) for v in first.ImageOrientationPatient[:3]],
                          [float(v) for v in first.ImageOrientationPatient[3:]])
        along = {f.rel: float(np.dot([float(v) for v in f.ImagePositionPatient], normal)) for f in files}
        expected = sorted(along, key=along.get)
        if first.Modality == "MR":  # sagittal: normal −x (LPS) already points to the patient's right
            assert normal[0] < -0.99
        meta = detail["meta"]
        assert [f"{meta['folder']}/{n}" for n in meta["files"]] == expected
        assert detail["depth"] == len(files) and detail["width"] == first.Columns
    patient = client.get(f"/api/datasets/{ingested.dataset_id}/patients/{dicom_sample.patients[0]}").json()
    assert patient["sex"] == "F" and [s["order"] for s in patient["studies"]] == [1, 2]
    assert [s["age"] for s in patient["studies"]] == [54.0, 54.0]
    assert [len(s["items"]) for s in patient["studies"]] == [1, 1]


def test_windows_spacing_and_notes_from_the_headers(client, ingested, dicom_sample):
    by_modality = {}
    for uid, files in read_series(dicom_sample.root).items():
        detail = client.get(f"/api/items/{item_id(client, ingested.dataset_id, uid)}").json()
        by_modality[(files[0].Modality, len(files), files[0].get("GantryDetectorTilt"))] = detail
    axial = by_modality[("CT", 30, None)]
    assert axial["window"] == [-160, 240]  # first of WindowCenter [40, −600] / WindowWidth [400, 1500]
    assert axial["spacing"] == [1.5, 1.5, 5.0] and axial["meta"]["window_source"] == "file"
    tilted = by_modality[("CT", 16, 15.0)]
    assert tilted["window"] == [-160, 240] and tilted["meta"]["window_source"].startswith("default")
    assert tilted["label"] == "CT AX TILT 15"  # modality and SeriesDescription: what the item cards show
    assert tilted["spacing"][2] == pytest.approx(4 * math.cos(math.radians(15)), abs=1e-5)
    assert any("gantry tilt of about 15.0°" in n for n in tilted["meta"]["notes"])
    assert by_modality[("MR", 20, None)]["window"] == [0, 1400]
    assert by_modality[("CT", 1, None)]["window"] == [-1350, 150]  # the multi-frame file's FrameVOILUT


def test_axial_ct_planes_equal_the_sorted_pixel_arrays(client, ingested, dicom_sample):
    [files] = [f for f in read_series(dicom_sample.root).values() if len(f) == 30]
    files.sort(key=lambda f: float(f.ImagePositionPatient[2]))  # inferior first
    vol = np.stack([hu(f) for f in files])  # [slice (inferior→superior), row (anterior→posterior), col (R→L)]
    n, rows, cols = vol.shape
    row_mm, col_mm = (float(v) for v in files[0].PixelSpacing)
    item = item_id(client, ingested.dataset_id, files[0].SeriesInstanceUID)
    for k in (0, 7, n - 1):
        assert np.array_equal(raw(client, item, slice=k), vol[k])  # stored orientation already radiological
        assert np.abs(png(client, item, slice=k, window="-175,275").astype(int) - grey(vol[k], -175, 275)).max() <= 1
    for c in (40, rows // 2):  # coronal c counts posterior → anterior: stored row rows−1−c
        expected = square(vol[::-1, rows - 1 - c, :].astype(np.int16), 5.0, col_mm)  # superior at the top
        ours = raw(client, item, plane="coronal", slice=c)
        assert ours.shape == (round(n * 5.0 / col_mm), cols) and np.array_equal(ours, expected)
    for s in (30, cols // 2):  # sagittal s counts left → right: stored column cols−1−s
        expected = square(vol[::-1, :, cols - 1 - s].astype(np.int16), 5.0, row_mm)  # anterior on the left
        assert np.array_equal(raw(client, item, plane="sagittal", slice=s), expected)
    default = client.get(f"/api/items/{item}/render")
    assert default.headers["x-slice"] == str(n // 2) and default.headers["x-window"] == "-160,240"
    assert default.headers["x-pixel-spacing"] == "1.5"
    assert client.get(f"/api/items/{item}/render", params={"slice": n}).status_code == 400


def test_sagittal_mr_reformatted_to_axial_and_coronal(client, ingested, dicom_sample):
    [files] = [f for f in read_series(dicom_sample.root).values() if f[0].Modality == "MR"]
    files.sort(key=lambda f: float(f.ImagePositionPatient[0]))  # LPS x ascending: patient right first
    stack = np.stack([f.pixel_array.astype(np.int16) for f in files])  # [slice R→L, row S→I, col A→P]
    n, rows, cols = stack.shape
    slice_mm = abs(float(files[1].ImagePositionPatient[0]) - float(files[0].ImagePositionPatient[0]))
    row_mm, col_mm = (float(v) for v in files[0].PixelSpacing)
    item = item_id(client, ingested.dataset_id, files[0].SeriesInstanceUID)
    for m in (0, n // 2, n - 1):  # sagittal m counts left → right: the (n−1−m)-th from the right
        assert np.array_equal(raw(client, item, plane="sagittal", slice=m), stack[n - 1 - m])
    for k in (10, rows // 2):  # axial k counts inferior → superior: stored row rows−1−k
        expected = square(stack[:, rows - 1 - k, :].T, col_mm, slice_mm)  # rows A→P, columns R→L
        assert np.array_equal(raw(client, item, plane="axial", slice=k), expected)
    for c in (20, 64):  # coronal c counts posterior → anterior: stored column cols−1−c
        expected = square(stack[:, :, cols - 1 - c].T, row_mm, slice_mm)  # rows S→I, columns R→L
        assert np.array_equal(raw(client, item, plane="coronal", slice=c), expected)
        assert np.abs(png(client, item, plane="coronal", slice=c).astype(int) - grey(expected, 0, 1400)).max() <= 1


def test_multiframe_keeps_its_frames_and_a_tilted_series_is_straightened(client, ingested, dicom_sample):
    series = read_series(dicom_sample.root)
    [mf] = [f[0] for f in series.values() if len(f) == 1]
    z = frame_z(mf)
    frames = mf.pixel_array.astype(np.int16) - 1024  # shared Pixel Value Transformation: intercept −1024
    item = item_id(client, ingested.dataset_id, mf.SeriesInstanceUID)
    for k, f in enumerate(np.argsort(z)):
        assert np.array_equal(raw(client, item, slice=k), frames[f])
    [tilted] = [f for f in series.values() if f[0].get("GantryDetectorTilt")]
    tilted.sort(key=lambda f: float(f.ImagePositionPatient[2]))
    item = item_id(client, ingested.dataset_id, tilted[0].SeriesInstanceUID)
    # straightened: slice k stepped 4 mm up the table, i.e. 4·sin 15° mm along the image columns (2 mm pixels)
    # past slice 0, so its acquired image sits that many rows lower in the straight grid (8 rows added to fit all)
    fill = min(float(hu(ds).min()) for ds in tilted)
    for k in (0, 9, 15):
        shown = raw(client, item, slice=k)
        assert shown.shape == (160 + 8, 160)
        rows = k * 4 * math.sin(math.radians(15)) / 2.0
        padded = np.full((168, 160), fill)
        padded[:160] = hu(tilted[k])
        expected = ndimage.shift(padded, (rows, 0), order=1, mode="constant", cval=fill)
        inside = slice(math.ceil(rows) + 1, 159)
        assert np.abs(shown[inside].astype(float) - expected[inside]).max() <= 1  # int16 rounding


def test_item_page_shows_the_series(client, ingested, dicom_sample):
    [files] = [f for f in read_series(dicom_sample.root).values() if f[0].get("GantryDetectorTilt")]
    page = client.get(f"/items/{item_id(client, ingested.dataset_id, files[0].SeriesInstanceUID)}")
    assert page.status_code == 200
    for text in ("DICOM series", "2020-05-05", "AX TILT 15", "Explicit VR Little Endian", "MedView Synthetic",
                 "gantry tilt of about 15.0°", files[0].SeriesInstanceUID):
        assert text in page.text


def test_reingest_is_idempotent(engine, settings, ingested, dicom_sample):
    again = ingest_path(engine, settings, dicom_sample.root, kind="dicom", name="sample")
    assert (again.items, again.added, again.updated, again.unchanged) == (4, 0, 0, 4)


# -- bad input ------------------------------------------------------------------------------------

def series_files(root: Path, modality: str, count: int) -> list[Path]:
    [files] = [f for f in read_series(root).values() if f[0].Modality == modality and len(f) == count]
    return [root / f.rel for f in sorted(files, key=lambda f: float(f.ImagePositionPatient[2]))]


def test_truncated_file_is_reported_and_the_rest_indexed(engine, settings, tree):
    victim = series_files(tree, "CT", 30)[12]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    report = ingest_path(engine, settings, tree, kind="dicom")
    bad = [p for p in report.problems if p.file == victim.relative_to(tree).as_posix()]
    assert len(bad) == 1 and "truncated" in bad[0].message
    assert report.items == 4
    detail = DicomAdapter().scan(tree)
    axial = next(i for i in detail.items if i.depth == 29)  # the gap is noted, not hidden
    assert any("varies from 5 to 10 mm" in n for n in axial.meta["notes"])


def test_file_truncated_after_ingest_is_a_clear_404(engine, settings, client, tree):
    report = ingest_path(engine, settings, tree, kind="dicom")
    files = series_files(tree, "CT", 30)
    item = item_id(client, report.dataset_id, pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID)
    files[3].write_bytes(files[3].read_bytes()[:5000])
    for params in ({"slice": 3}, {"plane": "coronal"}):  # its own slice, and a plane that needs every file
        r = client.get(f"/api/items/{item}/render", params=params)
        assert r.status_code == 404 and files[3].relative_to(tree).as_posix() in r.json()["detail"]
        assert "pixel data" in r.json()["detail"]
    assert client.get(f"/api/items/{item}/render", params={"slice": 4}).status_code == 200


def test_non_dicom_file_with_dcm_extension(engine, settings, client, tree):
    (tree / "DICOM" / "report.dcm").write_text("Radiology report: no acute findings.\n")
    report = ingest_path(engine, settings, tree, kind="dicom")
    [bad] = [p for p in report.problems if p.file == "DICOM/report.dcm"]
    assert "not a DICOM file" in bad.message and report.items == 4
    ds = client.get(f"/api/datasets/{report.dataset_id}").json()
    assert any(p["file"] == "DICOM/report.dcm" for p in ds["problems"])


def test_undecodable_transfer_syntax_is_a_clear_4xx_naming_file_and_syntax(engine, settings, client, tree):
    source = series_files(tree, "CT", 30)[0]
    ds = pydicom.dcmread(source)
    ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = MPEG2
    ds.PixelData = encapsulate([ds.PixelData])
    ds["PixelData"].VR = "OB"
    ds.save_as(tree / "DICOM" / "VIDEO1", enforce_file_format=True)
    report = ingest_path(engine, settings, tree, kind="dicom")
    assert report.items == 5
    [warned] = [p for p in report.problems if p.file == "DICOM/VIDEO1"]
    assert "MPEG2" in warned.message and MPEG2 in warned.message
    r = client.get(f"/api/items/{item_id(client, report.dataset_id, ds.SeriesInstanceUID)}/render")
    assert 400 <= r.status_code < 500
    detail = r.json()["detail"]
    assert "DICOM/VIDEO1" in detail and "MPEG2 Main Profile" in detail and MPEG2 in detail
    other = item_id(client, report.dataset_id, pydicom.dcmread(source, stop_before_pixels=True).SeriesInstanceUID)
    assert client.get(f"/api/items/{other}/render").status_code == 200


def test_series_with_an_odd_sized_file_is_split(engine, settings, client, tree):
    source = series_files(tree, "CT", 30)[5]
    ds = pydicom.dcmread(source)
    small = cv2.resize(ds.pixel_array, (128, 128), interpolation=cv2.INTER_AREA)
    ds.Rows, ds.Columns, ds.PixelData = 128, 128, small.tobytes()
    ds.PixelSpacing = [3.0, 3.0]
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.save_as(tree / "DICOM" / "SCOUT", enforce_file_format=True)
    report = ingest_path(engine, settings, tree, kind="dicom")
    uid = ds.SeriesInstanceUID
    assert report.items == 5
    [split] = [p for p in report.problems if "split into one item each" in p.message]
    assert split.item == uid and f"{uid}#2: 1 slice(s), 128×128 px" in split.message
    part = client.get(f"/api/items/{item_id(client, report.dataset_id, uid + '#2')}").json()
    assert part["depth"] == 1 and part["meta"]["files"] == ["SCOUT"]
    assert client.get(f"/api/items/{item_id(client, report.dataset_id, uid)}").json()["depth"] == 30


def test_folder_without_dicom_images_is_refused(engine, settings, tmp_path):
    root = tmp_path / "notdicom"
    root.mkdir()
    (root / "a.dcm").write_bytes(b"\0" * 64)
    assert DicomAdapter().detect(root) is False
    with pytest.raises(Exception, match="no DICOM image files"):
        ingest_path(engine, settings, root, kind="dicom")


# -- real samples ---------------------------------------------------------------------------------

@pytest.mark.realdata
def test_real_jpeg2000_series_without_extensions(engine, settings, client, realdata):
    root = realdata("dicom_ct", "totalsegmentator_example_ct_dicom")
    files = sorted((pydicom.dcmread(p) for p in root.iterdir()), key=lambda d: float(d.ImagePositionPatient[2]))
    assert files[0].file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.90"
    report = ingest_path(engine, settings, root, kind="dicom", name="ts")
    assert report.items == 1 and len(report.problems) == 1 and "no SeriesInstanceUID" in report.problems[0].message
    item = client.get(f"/api/datasets/{report.dataset_id}/items").json()["items"][0]
    detail = client.get(f"/api/items/{item['id']}").json()
    assert detail["depth"] == 20 and detail["width"] == detail["height"] == 512
    assert detail["spacing"] == pytest.approx([0.9765625, 0.9765625, 2.0])  # 2 mm steps (3 mm thick slices)
    centre, width = float(files[0].WindowCenter[0]), float(files[0].WindowWidth[0])
    assert detail["window"] == [centre - width / 2, centre + width / 2] == [-110, 190]
    for k in (0, 13, 19):
        expected = hu(files[k])
        assert np.array_equal(raw(client, item["id"], slice=k), expected.astype(np.int16))
        ours = png(client, item["id"], slice=k)
        assert ours.shape == (512, 512) and np.abs(ours.astype(int) - grey(expected, -110, 190)).max() <= 1


@pytest.mark.realdata
def test_real_single_slice_and_two_slice_series(engine, settings, client, realdata):
    root = realdata("dicom_ct")
    report = ingest_path(engine, settings, root, kind="dicom", name="real")
    assert report.items == 3  # CT_small alone, the two rt-utils slices together, the TotalSegmentator series
    assert [p.file for p in report.problems if "not a DICOM file" in p.message] == ["SOURCES.md"]
    small = pydicom.dcmread(root / "pydicom_single" / "CT_small.dcm")
    detail = client.get(f"/api/items/{item_id(client, report.dataset_id, small.SeriesInstanceUID)}").json()
    assert detail["depth"] == 1 and detail["meta"]["window_source"].startswith("default")
    assert np.array_equal(raw(client, detail["id"]), hu(small).astype(np.int16))
    pair = [pydicom.dcmread(root / "rt-utils_phantom_ge" / n) for n in ("ct_1.dcm", "ct_2.dcm")]
    assert pair[0].SeriesInstanceUID == pair[1].SeriesInstanceUID
    detail = client.get(f"/api/items/{item_id(client, report.dataset_id, pair[0].SeriesInstanceUID)}").json()
    assert detail["depth"] == 2 and detail["meta"]["files"] == ["ct_1.dcm", "ct_2.dcm"]  # z 60 then 65
    assert detail["spacing"][2] == 5.0 and detail["window"] == [-20, 20]  # the files' own VOI: 0 / 40
    for k, ds in enumerate(pair):
        assert np.array_equal(raw(client, detail["id"], slice=k), hu(ds).astype(np.int16))
