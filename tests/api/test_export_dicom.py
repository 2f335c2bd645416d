"""`dicom-seg` and `dicom-sr` (issue 12) on DICOM series, read back with highdicom and pydicom and checked against an
independent computation from the source files' own geometry (ImagePositionPatient, ImageOrientationPatient,
PixelSpacing) and the viewer's documented display convention (API.md "Planes and slices": axial — patient's right
on the image's left, anterior at the top; sagittal — anterior on the left, superior at the top).

Masks are painted through the annotation API (a label PNG of one plane, as the brush saves it) on an axial CT, a
sagittal MR (painted in its sagittal plane) and an enhanced multi-frame CT; measurements are saved as the viewer
saves them (axial display pixels, `slice`, `meta.plane`). SQLite only: these are file-format tests."""

from __future__ import annotations

import base64
import io
import zipfile
from pathlib import Path

import cv2
import highdicom as hd
import numpy as np
import pydicom
import pytest
from sqlalchemy.orm import Session

from app.cli import main as cli_main
from app.datasets.dicom.synth import generate_dicom
from app.datasets.ingest import ingest_path
from app.db.models import Annotation
from tests.conftest import fresh_database
from tests.helpers.api import wait_finished
from tests.helpers.auth import api_token


@pytest.fixture
def database_url(request, tmp_path, sqlite_template):
    yield from fresh_database(request, "sqlite", tmp_path, sqlite_template)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return generate_dicom(tmp_path_factory.mktemp("dicom-export") / "dcm", seed=11)


def _as(settings, name: str, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token(settings, name, role)}"}


def _export(client, headers, **body) -> dict[str, bytes]:
    r = client.post("/api/exports", json=body, headers=headers)
    assert r.status_code == 202, r.text
    job = wait_finished(client, r.json()["id"])
    assert job["status"] == "done", job
    summary = client.get(f"/api/exports/{r.json()['id']}", headers=headers).json()
    content = client.get(summary["download_url"], headers=headers).content
    if content[:2] == b"PK":
        archive = zipfile.ZipFile(io.BytesIO(content))
        return {name: archive.read(name) for name in archive.namelist()}
    return {Path(summary.get("file") or "export.dcm").name: content}


def _png(labels: np.ndarray) -> str:
    return base64.b64encode(cv2.imencode(".png", labels.astype(np.uint8))[1].tobytes()).decode()


def _instances(root: Path, files: list[str]) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(root / f) for f in files]


def _frames(ds: pydicom.Dataset) -> list[tuple[int | None, np.ndarray, np.ndarray, np.ndarray, tuple[float, float]]]:
    """(frame number or None, IPP, row direction, column direction, (row mm, column mm)) per frame, in LPS."""
    if "PerFrameFunctionalGroupsSequence" in ds:
        shared = ds.SharedFunctionalGroupsSequence[0]
        iop = np.array(shared.PlaneOrientationSequence[0].ImageOrientationPatient, float)
        spacing = tuple(float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing)
        return [(n + 1, np.array(g.PlanePositionSequence[0].ImagePositionPatient, float), iop[:3], iop[3:], spacing)
                for n, g in enumerate(ds.PerFrameFunctionalGroupsSequence)]
    iop = np.array(ds.ImageOrientationPatient, float)
    return [(None, np.array(ds.ImagePositionPatient, float), iop[:3], iop[3:],
             tuple(float(v) for v in ds.PixelSpacing))]


def _pixel_lps(ds, frame) -> np.ndarray:
    """(rows, cols, 3) patient LPS of every pixel centre of one frame."""
    _n, ipp, row_dir, col_dir, (d_row, d_col) = frame
    r, c = np.meshgrid(np.arange(int(ds.Rows)), np.arange(int(ds.Columns)), indexing="ij")
    return ipp + c[..., None] * d_col * row_dir + r[..., None] * d_row * col_dir


def _uid(ds: pydicom.Dataset) -> str:
    return str(ds.get("SOPInstanceUID") or ds.file_meta.MediaStorageSOPInstanceUID)  # blank in the real sample


def expected_on_frames(datasets, painted: dict[int, np.ndarray], plane: str):
    """Per (SOPInstanceUID, frame): the labels the painted display planes put on that frame's pixels, found from
    the pixels' patient positions alone (square in-plane pixels of `pixel` mm, slices `between` mm apart)."""
    frames = [(ds, f) for ds in datasets for f in _frames(ds)]
    points = {(_uid(ds), f[0]): _pixel_lps(ds, f) for ds, f in frames}
    pixel = frames[0][1][4][0]
    if plane == "axial":
        between = float(np.median(np.diff(sorted(float(f[1][2]) for _ds, f in frames))))
    else:
        between = float(np.median(np.diff(sorted(float(f[1][0]) for _ds, f in frames))))
    every = np.concatenate([p.reshape(-1, 3) for p in points.values()])
    low, high = every.min(0), every.max(0)
    out = {}
    for key, lps in points.items():
        labels = np.zeros(lps.shape[:2], np.uint8)
        if plane == "axial":
            k = np.rint((lps[..., 2] - low[2]) / between).astype(int)  # inferior first
            row = np.rint((lps[..., 1] - low[1]) / pixel).astype(int)  # anterior (low LPS y) at the top
            col = np.rint((lps[..., 0] - low[0]) / pixel).astype(int)  # patient right (low LPS x) on the left
        else:  # sagittal
            k = np.rint((high[0] - lps[..., 0]) / between).astype(int)  # patient left (high LPS x) first
            row = np.rint((high[2] - lps[..., 2]) / pixel).astype(int)  # superior at the top
            col = np.rint((lps[..., 1] - low[1]) / pixel).astype(int)  # anterior on the left
        for index, image in painted.items():
            on = k == index
            labels[on] = image[row[on], col[on]]
        out[key] = labels
    return out


def _read_seg(data: bytes):
    return hd.seg.segread(io.BytesIO(data))


def _seg_labels(seg, uid: str, frame: int | None, names: dict[int, str]) -> np.ndarray:
    """The SEG's labels on one source frame, as the app's label values (through the segment labels)."""
    numbers = list(seg.segment_numbers)
    if frame is None:
        pixels = seg.get_pixels_by_source_instance([uid], segment_numbers=numbers, combine_segments=True,
                                                   assert_missing_frames_are_empty=True)[0]
    else:
        pixels = seg.get_pixels_by_source_frame(uid, [frame], segment_numbers=numbers, combine_segments=True,
                                                assert_missing_frames_are_empty=True)[0]
    value_of = {n: next(v for v, name in names.items() if name == seg.get_segment_description(n).segment_label)
                for n in numbers}
    out = np.zeros(pixels.shape, np.uint8)
    for n, v in value_of.items():
        out[pixels == n] = v
    return out


def test_dicom_seg_and_sr_read_back(client, settings, engine, sample, tmp_path):
    ds_id = ingest_path(engine, settings, sample.root, kind="dicom", name="dcm").dataset_id
    items = {i["key"]: i for i in client.get(f"/api/datasets/{ds_id}/items", params={"limit": 50}).json()["items"]}
    by_description = {}
    for key in items:
        detail = client.get(f"/api/items/{items[key]['id']}").json()
        by_description[detail["meta"]["series_description"]] = detail
    ct, mr, mf = by_description["AX ABD 5mm"], by_description["SAG T1"], by_description["CHEST ENHANCED MF"]
    reviewer, annotator = _as(settings, "rev", "reviewer"), _as(settings, "ann", "annotator")

    # nothing to export yet: a clear 400 before any job
    for fmt, words in (("dicom-seg", "mask annotations"), ("dicom-sr", "measurements")):
        r = client.post("/api/exports", json={"dataset_id": ds_id, "format": fmt}, headers=reviewer)
        assert r.status_code == 400 and words in r.json()["detail"], r.text

    # masks painted as the brush saves them: one plane (display orientation) per upload
    painted: dict[str, tuple[str, dict[int, np.ndarray]]] = {}
    for item, plane, index, shape in ((ct, "axial", 12, (256, 256)), (mr, "sagittal", 5, (96, 128)),
                                      (mf, "axial", 3, (128, 128))):
        labels = np.zeros(shape, np.uint8)
        labels[20:50, 30:90] = 1  # a lesion, off-centre (a flip or transposition would move it)
        labels[60:70, 10:25] = 2  # an organ
        r = client.post(f"/api/items/{item['id']}/annotations", headers=annotator, json={
            "kind": "mask", "label": None, "geometry": {"png": _png(labels), "plane": plane, "slice": index}})
        assert r.status_code == 201, r.text
        painted[item["key"]] = (plane, {index: labels})

    files = _export(client, reviewer, dataset_id=ds_id, format="dicom-seg")
    assert len(files) == 3, sorted(files)
    names = {1: "lesion", 2: "organ"}
    for item in (ct, mr, mf):
        (name,) = [n for n in files if n.startswith(item["key"].replace("#", "_"))]
        seg = _read_seg(files[name])
        assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4" and seg.SegmentationType == "BINARY"
        assert [seg.get_segment_description(n).segment_label for n in seg.segment_numbers] == ["lesion", "organ"]
        colour = seg.get_segment_description(1).RecommendedDisplayCIELabValue
        assert len(colour) == 3
        sources = _instances(sample.root, sample.series[item["key"]])
        assert seg.StudyInstanceUID == sources[0].StudyInstanceUID
        assert seg.FrameOfReferenceUID == sources[0].FrameOfReferenceUID
        referenced = {s.ReferencedSOPInstanceUID for s in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
        assert referenced <= {s.SOPInstanceUID for s in sources}
        plane, planes = painted[item["key"]]
        expected = expected_on_frames(sources, planes, plane)
        assert sum(int(np.count_nonzero(e)) for e in expected.values()) == 30 * 60 + 10 * 15
        for (uid, frame), want in expected.items():
            got = _seg_labels(seg, uid, frame, names)
            assert np.array_equal(got, want), (item["key"], uid, frame)

    # measurements as the viewer saves them: axial display pixels on a slice
    long, short = [[100, 120], [140, 130]], [[118, 110], [122, 140]]
    r = client.post(f"/api/items/{ct['id']}/annotations", headers=annotator, json={
        "kind": "recist", "geometry": {"long": long, "short": short}, "slice": 7, "meta": {"plane": "axial"}})
    assert r.status_code == 201, r.text
    r = client.post(f"/api/items/{ct['id']}/annotations", headers=reviewer, json={
        "kind": "line", "geometry": {"line": [[10, 200], [60, 240]]}, "slice": 20, "meta": {"plane": "axial"}})
    assert r.status_code == 201, r.text
    mr_line = [[5, 30], [80, 90]]
    r = client.post(f"/api/items/{mr['id']}/annotations", headers=annotator, json={
        "kind": "line", "geometry": {"line": mr_line}, "slice": 40, "meta": {"plane": "axial"}})
    assert r.status_code == 201, r.text

    with Session(engine) as s:  # a dataset's own RECIST (as an ingest with measurements would store it)
        s.add(Annotation(item_id=mf["id"], dataset_id=ds_id, kind="recist", source="dataset", slice_index=2,
                         geometry={"long": [[30, 40], [70, 40]], "short": [[50, 30], [50, 50]]}, meta={}))
        s.commit()

    files = _export(client, reviewer, dataset_id=ds_id, format="dicom-sr")
    assert sorted(n.rsplit("_sr_", 1)[1] for n in files) == ["ann.dcm", "ann.dcm", "dataset.dcm", "rev.dcm"], \
        sorted(files)
    # the dataset's own: a device observer; on a multi-frame source, the frame holding that slice
    original = _export(client, reviewer, dataset_id=ds_id, format="dicom-sr", annotations="dataset")
    assert list(original) == [n for n in files if n.endswith("_sr_dataset.dcm")]
    dataset_sr = pydicom.dcmread(io.BytesIO(next(iter(original.values()))))
    device = next(i for i in dataset_sr.ContentSequence  # 121013: Device Observer Name
                  if i.ConceptNameCodeSequence[0].CodeValue == "121013")
    assert device.TextValue == "MedView dataset dcm"
    (mf_source,) = _instances(sample.root, sample.series[mf["key"]])
    z_order = sorted(_frames(mf_source), key=lambda f: float(f[1][2]))
    mf_long, _mf_short = hd.sr.Comprehensive3DSR.from_dataset(dataset_sr).content.get_planar_roi_measurement_groups()
    referenced = mf_long.roi.ContentSequence[0].ReferencedSOPSequence[0]
    assert referenced.ReferencedSOPInstanceUID == mf_source.SOPInstanceUID
    assert referenced.ReferencedFrameNumber == z_order[2][0]
    (mf_measurement,) = mf_long.get_measurements()
    assert mf_measurement.value == pytest.approx(40 * float(z_order[0][4][0]), abs=1e-3)
    r = client.post("/api/exports", json={"dataset_id": ds_id, "format": "dicom-seg", "annotations": "dataset"},
                    headers=reviewer)
    assert r.status_code == 400 and "dataset's own" in r.json()["detail"], r.text
    ct_sources = _instances(sample.root, sample.series[ct["key"]])
    by_z = sorted(ct_sources, key=lambda d: float(d.ImagePositionPatient[2]))
    low = np.array([min(float(d.ImagePositionPatient[a]) for d in ct_sources) for a in range(3)])
    px = float(ct_sources[0].PixelSpacing[0])

    def ct_point(p, k):  # axial display (x, y) on slice k → LPS, by the display convention
        return np.array([low[0] + p[0] * px, low[1] + p[1] * px, float(by_z[k].ImagePositionPatient[2])])

    def scoord_lps(data, image):  # SCOORD (column, row) from the pixel's corner → LPS, from the image's geometry
        _n, ipp, row_dir, col_dir, (d_row, d_col) = _frames(image)[0]
        return [ipp + (c - 0.5) * d_col * row_dir + (r - 0.5) * d_row * col_dir for c, r in data]

    ann_ct = pydicom.dcmread(io.BytesIO(files[next(n for n in files if n.startswith(ct["key"]) and "_sr_ann" in n)]))
    sr = hd.sr.Comprehensive3DSR.from_dataset(ann_ct)
    assert ann_ct.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"
    evidence = {i.ReferencedSOPInstanceUID for s in ann_ct.CurrentRequestedProcedureEvidenceSequence
                for series in s.ReferencedSeriesSequence for i in series.ReferencedSOPSequence}
    assert evidence == {d.SOPInstanceUID for d in ct_sources}
    report = sr.content
    assert ann_ct.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    observer = next(item for item in ann_ct.ContentSequence if item.ConceptNameCodeSequence[0].CodeValue == "121008")
    assert observer.PersonName.family_name == "ann"
    long_group, short_group = report.get_planar_roi_measurement_groups()  # a RECIST: long axis, then short
    for group, segment, code, mm in ((long_group, long, "103339001", np.hypot(40, 10) * px),
                                     (short_group, short, "103340004", np.hypot(4, 30) * px)):
        roi = group.roi
        assert roi.GraphicType == "POLYLINE"
        assert roi.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == by_z[7].SOPInstanceUID
        assert np.allclose(scoord_lps(roi.value, by_z[7]), [ct_point(p, 7) for p in segment], atol=1e-3)
        (measurement,) = group.get_measurements()
        assert measurement.name.value == code and measurement.unit.value == "mm"
        assert measurement.value == pytest.approx(mm, abs=1e-3)
        assert group.finding_type.value == "52988006"

    rev_ct = hd.sr.Comprehensive3DSR.from_dataset(
        pydicom.dcmread(io.BytesIO(files[next(n for n in files if "_sr_rev" in n)])))
    (line_group,) = rev_ct.content.get_planar_roi_measurement_groups()
    (length,) = line_group.get_measurements()
    assert length.name.value == "410668003" and length.value == pytest.approx(np.hypot(50, 40) * px, abs=1e-3)
    assert line_group.roi.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == \
        by_z[20].SOPInstanceUID

    # the MR was acquired sagittal: an axial measurement lies on no single instance → SCOORD3D in its frame
    mr_sr = hd.sr.Comprehensive3DSR.from_dataset(
        pydicom.dcmread(io.BytesIO(files[next(n for n in files if n.startswith(mr["key"]))])))
    (mr_group,) = mr_sr.content.get_planar_roi_measurement_groups()
    mr_sources = _instances(sample.root, sample.series[mr["key"]])
    assert mr_group.roi.ValueType == "SCOORD3D"
    assert mr_group.roi.ReferencedFrameOfReferenceUID == mr_sources[0].FrameOfReferenceUID
    xs = sorted(float(d.ImagePositionPatient[0]) for d in mr_sources)
    step_x, pixel = xs[1] - xs[0], float(mr_sources[0].PixelSpacing[0])  # 15 mm between slices, 3 mm pixels
    z_top = float(mr_sources[0].ImagePositionPatient[2])
    y_low = float(mr_sources[0].ImagePositionPatient[1])
    rows = int(mr_sources[0].Rows)
    z_low = z_top - (rows - 1) * pixel

    def mr_point(p):  # axial display of a 20-slice × 15 mm axis shown at 3 mm pixels (square), slice 40 from below
        column = (p[0] + 0.5) * pixel / step_x - 0.5  # in voxels of 15 mm, counted from patient right
        return np.array([xs[0] + column * step_x, y_low + p[1] * pixel, z_low + 40 * pixel])

    assert np.allclose(np.reshape(mr_group.roi.value, (-1, 3)), [mr_point(p) for p in mr_line], atol=1e-2)
    (mr_length,) = mr_group.get_measurements()
    a, b = (mr_point(p) for p in mr_line)
    assert mr_length.value == pytest.approx(float(np.linalg.norm(a - b)), abs=1e-2)


@pytest.mark.realdata
def test_real_series_seg_and_sr_by_command(monkeypatch, capsys, client, settings, engine, realdata, tmp_path):
    """The real TotalSegmentator CT (JPEG 2000): a mask and a RECIST on it, exported with `medview export`."""
    for name in ("database_url", "data_dir", "data_roots"):
        monkeypatch.setenv(f"MEDVIEW_{name.upper()}", str(getattr(settings, name)))
    root = realdata("dicom_ct", "totalsegmentator_example_ct_dicom")
    ds_id = ingest_path(engine, settings, root, kind="dicom", name="ts").dataset_id
    out = tmp_path / "seg"
    assert cli_main(["export", "--dataset", "ts", "--format", "dicom-seg", "--quiet", str(out)]) == 2
    assert "mask annotations" in capsys.readouterr().err
    item = client.get(f"/api/datasets/{ds_id}/items").json()["items"][0]
    annotator = _as(settings, "ann", "annotator")
    labels = np.zeros((512, 512), np.uint8)
    labels[100:180, 300:420] = 1
    r = client.post(f"/api/items/{item['id']}/annotations", headers=annotator, json={
        "kind": "mask", "geometry": {"png": _png(labels), "plane": "axial", "slice": 4}})
    assert r.status_code == 201, r.text
    r = client.post(f"/api/items/{item['id']}/annotations", headers=annotator, json={
        "kind": "recist", "geometry": {"long": [[300, 100], [400, 160]], "short": [[340, 150], [360, 110]]},
        "slice": 4, "meta": {"plane": "axial"}})
    assert r.status_code == 201, r.text
    assert cli_main(["export", "--dataset", "ts", "--format", "dicom-seg", "--quiet", str(out)]) == 0
    assert cli_main(["export", "--dataset", "ts", "--format", "dicom-sr", "--quiet", str(out)]) == 0
    sources = [pydicom.dcmread(f) for f in sorted(root.iterdir())]
    expected = expected_on_frames(sources, {4: labels}, "axial")
    (seg_path,) = out.glob("*_seg.dcm")
    seg = hd.seg.segread(seg_path)
    for (uid, _frame), want in expected.items():
        assert np.array_equal(_seg_labels(seg, uid, None, {1: "lesion", 2: "organ"}), want), uid
    (sr_path,) = out.glob("*_sr_ann.dcm")
    sr = hd.sr.Comprehensive3DSR.from_dataset(pydicom.dcmread(sr_path))
    group, _short = sr.content.get_planar_roi_measurement_groups()
    by_z = sorted(sources, key=lambda d: float(d.ImagePositionPatient[2]))
    assert group.roi.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == _uid(by_z[4])
    px = float(sources[0].PixelSpacing[0])
    (measurement,) = group.get_measurements()
    assert measurement.name.value == "103339001"
    assert measurement.value == pytest.approx(np.hypot(100, 60) * px, abs=1e-3)
