"""Issue 14: the viewer's windows follow the modality, and volumes tell the viewer their orientation.

An MR series (generated with pydicom, Modality MR, a VOI window 700/1400 in its files) used to show "0 to 1400 HU"
and the CT presets: its page now offers the file's window and the percentile auto-window, no HU anywhere and no CT
preset; the auto-window is checked against the percentiles of the series' values read independently with pydicom.
`/raw` of a volume carries `X-Orientation`, the letters at the image's edges, computed from the affine: checked for a
DICOM MR series, a NIfTI volume rotated 30° (oblique) and the real VerSe sample (stored P-I-R); 2-D images have none.
"""

from __future__ import annotations

import html
import math
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from app.datasets.dicom.synth import generate_dicom
from app.datasets.ingest import ingest_path
from app.imaging.presets import PRESETS

TEXTBOOK = {"axial": "R,L,A,P", "coronal": "R,L,S,I", "sagittal": "A,P,S,I"}


@pytest.fixture(scope="module")
def dicom_tree(tmp_path_factory: pytest.TempPathFactory):
    return generate_dicom(tmp_path_factory.mktemp("dicom-modality") / "dcm", seed=5)


@pytest.fixture
def series(engine, settings, client, dicom_tree) -> dict[str, dict]:
    """The generated DICOM folder indexed: item details by series description."""
    report = ingest_path(engine, settings, dicom_tree.root, kind="dicom", name="dcm")
    listing = client.get(f"/api/datasets/{report.dataset_id}/items").json()["items"]
    details = [client.get(f"/api/items/{i['id']}").json() for i in listing]
    return {d["meta"]["series_description"]: d for d in details}


def visible_text(page: str) -> str:
    """The page's text as a reader sees it: no scripts (the viewer's JSON state), no tags, entities decoded."""
    page = re.sub(r"<script\b.*?</script>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def viewer_state(page: str) -> dict:
    import json

    block = re.search(r'<script type="application/json" id="viewer-state">(.*?)</script>', page, re.S)
    assert block, "no viewer state in the page"
    return json.loads(html.unescape(block.group(1)))


def mr_values(root: Path, files: list[str]) -> np.ndarray:
    """Every voxel of the MR series as the modality LUT gives it, read with pydicom (rounded as stored values)."""
    out = []
    for name in files:
        ds = pydicom.dcmread(root / name)
        out.append(np.rint(ds.pixel_array * float(getattr(ds, "RescaleSlope", 1)) +
                           float(getattr(ds, "RescaleIntercept", 0))))
    return np.stack(out)


def test_an_mr_series_offers_its_own_window_and_the_auto_window_never_hu(client, series, dicom_tree):
    mr = series["SAG T1"]
    assert mr["meta"]["modality"] == "MR" and mr["window"] == [0.0, 1400.0]  # the files' VOI: 700 ± 1400/2
    r = client.get(f"/items/{mr['id']}")
    assert r.status_code == 200
    state = viewer_state(r.text)
    folder = dicom_tree.root / mr["meta"]["folder"]
    values = mr_values(folder, mr["meta"]["files"])
    auto = [math.floor(np.percentile(values, 0.5)), math.ceil(np.percentile(values, 99.5))]
    assert (state["ct"], state["windowed"], state["units"], state["modality"]) == (False, True, "", "MR")
    assert state["preset_order"] == ["default", "auto"] and state["presets"] == {"default": [0, 1400], "auto": auto}
    assert (state["preset"], state["window"]) == ("default", [0, 1400])
    buttons = re.findall(r'data-preset="([^"]+)"', r.text)
    assert buttons == ["default", "auto"] and not set(buttons) & set(PRESETS)
    text = visible_text(r.text)
    assert not re.search(r"\bHU\b", text), re.findall(r".{40}\bHU\b.{40}", text)
    assert "auto window" in text and f"{auto[0]} to {auto[1]}" in text

    # the auto-window chosen: the page's state, its first paint and the render endpoint agree on it
    r = client.get(f"/items/{mr['id']}", params={"preset": "auto"})
    state = viewer_state(r.text)
    assert (state["preset"], state["window"]) == ("auto", auto)
    first_paint = html.unescape(re.search(r'id="slice-image" src="([^"]+)"', r.text).group(1))
    assert "preset=auto" in first_paint
    rendered = client.get(first_paint)
    assert rendered.status_code == 200 and rendered.headers["x-window"] == f"{auto[0]},{auto[1]}"


def test_a_ct_preset_on_an_mr_series_is_a_400_naming_what_it_offers(client, series):
    mr = series["SAG T1"]
    r = client.get(f"/items/{mr['id']}", params={"preset": "lung"})
    assert r.status_code == 400
    text = visible_text(r.text)
    assert ("preset 'lung' is not available for this MR item: it is a CT window in HU, and this item's values are "
            "not Hounsfield units; choose one of default, auto") in text
    assert "Traceback" not in text


def test_ct_keeps_hounsfield_units_and_its_presets(client, series):
    ct = series["AX ABD 5mm"]
    r = client.get(f"/items/{ct['id']}")
    state = viewer_state(r.text)
    assert (state["ct"], state["units"], state["modality"]) == (True, "HU", "CT")
    assert set(re.findall(r'data-preset="([^"]+)"', r.text)) == {"default", *PRESETS}
    assert re.search(r"\bHU\b", visible_text(r.text))
    assert "auto" not in state["presets"]


def test_raw_views_of_a_dicom_series_carry_the_orientation_letters(client, series):
    mr = series["SAG T1"]  # acquired sagittal: rows posterior, columns inferior (LPS)
    for plane, letters in TEXTBOOK.items():
        r = client.get(f"/api/items/{mr['id']}/raw", params={"plane": plane})
        assert r.status_code == 200 and r.headers["x-orientation"] == letters, plane
        assert float(r.headers["x-pixel-spacing"]) > 0


def test_an_oblique_nifti_volume_shows_two_letter_markers(engine, settings, client, tmp_path):
    """A CT volume whose voxel axes are rotated 30° about the patient's long axis: the axial image's left edge
    points between right and anterior ("RA"), its top between anterior and left ("AL")."""
    root = tmp_path / "oblique"
    root.mkdir()
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    affine = np.array([[2 * c, -2 * s, 0, -40], [2 * s, 2 * c, 0, -30], [0, 0, 3, 10], [0, 0, 0, 1]])
    data = np.random.default_rng(1).integers(-1000, 1500, (24, 20, 12)).astype(np.int16)
    nib.save(nib.Nifti1Image(data, affine), root / "example_ct.nii.gz")
    report = ingest_path(engine, settings, root, kind="verse", name="oblique")
    assert report.items == 1
    [item] = client.get(f"/api/datasets/{report.dataset_id}/items").json()["items"]
    got = {p: client.get(f"/api/items/{item['id']}/raw", params={"plane": p}).headers["x-orientation"]
           for p in TEXTBOOK}
    assert got == {"axial": "RA,LP,AL,PR", "coronal": "RA,LP,S,I", "sagittal": "AL,PR,S,I"}


def test_two_d_images_have_no_orientation_but_keep_their_spacing(client, ingested):
    [item] = client.get(f"/api/datasets/{ingested.dataset_id}/items", params={"limit": 1}).json()["items"]
    r = client.get(f"/api/items/{item['id']}/raw")
    assert r.status_code == 200 and "x-orientation" not in r.headers and float(r.headers["x-pixel-spacing"]) > 0
    state = viewer_state(client.get(f"/items/{item['id']}").text)
    assert (state["ct"], state["units"], state["modality"]) == (True, "HU", "CT")  # DeepLesion: CT, no meta modality


@pytest.mark.realdata
def test_the_real_verse_sample_stored_pir_shows_the_textbook_letters(engine, settings, client, realdata):
    root = realdata("verse")
    report = ingest_path(engine, settings, root, kind="verse", name="real-verse")
    [item] = client.get(f"/api/datasets/{report.dataset_id}/items").json()["items"]
    detail = client.get(f"/api/items/{item['id']}").json()
    assert detail["meta"]["axcodes"] == ["P", "I", "R"]
    for plane, letters in TEXTBOOK.items():
        assert client.get(f"/api/items/{item['id']}/raw", params={"plane": plane}).headers["x-orientation"] == letters


def test_an_mr_series_without_a_window_opens_with_the_auto_window(engine, settings, client, dicom_tree, tmp_path):
    """The MR files without WindowCenter/WindowWidth: the stored value range is no default, the auto-window is;
    `preset=default` then names why it is not offered, an unknown name says so."""
    root = tmp_path / "mr-no-voi"
    for path in dicom_tree.root.rglob("*"):
        if not path.is_file():
            continue
        try:
            ds = pydicom.dcmread(path)
        except pydicom.errors.InvalidDicomError:
            continue
        if getattr(ds, "Modality", None) != "MR":
            continue
        del ds.WindowCenter, ds.WindowWidth
        target = root / path.relative_to(dicom_tree.root)
        target.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(target)
    report = ingest_path(engine, settings, root, kind="dicom", name="mr-no-voi")
    [item] = client.get(f"/api/datasets/{report.dataset_id}/items").json()["items"]
    mr = client.get(f"/api/items/{item['id']}").json()
    assert mr["meta"]["window_source"].startswith("default (the stored value range")
    r = client.get(f"/items/{mr['id']}")
    state = viewer_state(r.text)
    values = mr_values(root / mr["meta"]["folder"], mr["meta"]["files"])
    auto = [math.floor(np.percentile(values, 0.5)), math.ceil(np.percentile(values, 99.5))]
    assert (state["preset_order"], state["default_preset"], state["preset"], state["window"]) == (
        ["auto"], "auto", "auto", auto)
    assert re.findall(r'data-preset="([^"]+)"', r.text) == ["auto"] and "file's window" not in visible_text(r.text)
    first_paint = html.unescape(re.search(r'id="slice-image" src="([^"]+)"', r.text).group(1))
    assert client.get(first_paint).headers["x-window"] == f"{auto[0]},{auto[1]}"
    for preset, why in (("default", "its files have no window of their own"), ("wide", "no such preset")):
        r = client.get(f"/items/{mr['id']}", params={"preset": preset})
        assert r.status_code == 400
        assert f"preset '{preset}' is not available for this MR item: {why}; choose one of auto" in visible_text(r.text)
