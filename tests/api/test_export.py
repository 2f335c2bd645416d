"""Export over HTTP (issue 12), on SQLite and PostgreSQL: an export is a job with progress whose file the server
keeps under its data dir; `deeplesion-csv` after a RECIST edit (recomputed measurements, untouched rows
byte-identical to the source, re-ingest beside the same Images_png gives the same items and current annotations);
`coco` read by pycocotools (RLE masks decode to the mask files' pixels), `csv` with verdicts and the
`review_status=accepted,corrected` filter, `masks-png`; every bad input a 400 naming it; who may export."""

from __future__ import annotations

import base64
import csv
import io
import math
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.datasets.ingest import ingest_path
from app.db.models import Annotation, Item
from app.export.deeplesion_csv import numbers
from tests.helpers.api import wait_finished
from tests.helpers.auth import api_token


def _as(settings, name: str, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token(settings, name, role)}"}


def _export(client, headers: dict[str, str], **body) -> bytes:
    r = client.post("/api/exports", json=body, headers=headers)
    assert r.status_code == 202, r.text
    export_id = r.json()["id"]
    job = wait_finished(client, export_id)
    assert job["status"] == "done", job
    summary = client.get(f"/api/exports/{export_id}", headers=headers).json()
    assert summary["done"] == summary["total"] > 0 and summary["download_url"] == f"/api/exports/{export_id}/download"
    r = client.get(summary["download_url"], headers=headers)
    assert r.status_code == 200 and len(r.content) == summary["bytes"]
    return r.content


def _current_recists(engine, dataset_id: int) -> dict[str, list[tuple]]:
    with Session(engine) as s:
        rows = s.execute(select(Item.key, Annotation.geometry, Annotation.label)
                         .join(Item, Item.id == Annotation.item_id)
                         .where(Annotation.dataset_id == dataset_id, Annotation.kind == "recist",
                                Annotation.is_current()))
        out: dict[str, list[tuple]] = {}
        for key, g, label in rows:
            out.setdefault(key, []).append((label, [list(map(float, p)) for p in (*g["long"], *g["short"])]))
    return {k: sorted(v) for k, v in out.items()}


def test_deeplesion_csv_after_edits_round_trips(client, settings, engine, ingested, deeplesion_sample, tmp_path):
    ds = ingested.dataset_id
    annotator, reviewer = _as(settings, "ann", "annotator"), _as(settings, "rev", "reviewer")
    items = client.get(f"/api/datasets/{ds}/items", params={"limit": 50}).json()["items"]
    details = [client.get(f"/api/items/{i['id']}").json() for i in items]
    edited_item, added_item = details[0], details[1]
    ann = next(a for a in edited_item["annotations"] if a["kind"] == "recist")
    moved = {"long": [[180.5, 220.25], [220.5, 220.25]], "short": [[200.5, 212.25], [200.5, 228.25]]}
    r = client.put(f"/api/annotations/{ann['id']}", json={"version": 1, "geometry": moved}, headers=annotator)
    assert r.status_code == 200, r.text
    new = {"long": [[100, 300], [140, 300]], "short": [[120, 295], [120, 305]]}
    r = client.post(f"/api/items/{added_item['id']}/annotations", headers=annotator,
                    json={"kind": "recist", "label": "4", "geometry": new, "slice": added_item["slice"]})
    assert r.status_code == 201, r.text

    body = _export(client, reviewer, dataset_id=ds, format="deeplesion-csv")
    source_lines = (deeplesion_sample.root / "DL_info.csv").read_text().splitlines()
    lines = body.decode().splitlines()
    assert lines[0] == source_lines[0]  # the published header
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert len(rows) == len(source_lines)  # the header's line is the added lesion's: one lesion more
    edited = [r for r in rows if r["Measurement_coordinates"] == numbers([v for p in (*moved["long"], *moved["short"])
                                                                          for v in p])]
    assert len(edited) == 1 and edited[0]["File_name"] == edited_item["key"]
    assert edited[0]["Bounding_boxes"] == "175.5, 207.25, 225.5, 233.25"  # the points' extent ± 5 px
    assert edited[0]["Lesion_diameters_Pixel_"] == "40, 16"
    added = [r for r in rows if r["Measurement_coordinates"] == "100, 300, 140, 300, 120, 295, 120, 305"]
    assert len(added) == 1 and added[0]["File_name"] == added_item["key"] and added[0]["Coarse_lesion_type"] == "4"
    # every other row is the source's line, byte for byte; the edited lesion's source line is the one missing
    untouched = [line for line in lines[1:] if "180.5, 220.25" not in line and "100, 300, 140" not in line]
    assert set(untouched) <= set(source_lines[1:]) and len(untouched) == len(source_lines) - 2

    # re-ingested beside the same Images_png: the same items and the current annotations
    again = tmp_path / "reingest"
    again.mkdir()
    (again / "DL_info.csv").write_bytes(body)
    (again / "Images_png").symlink_to(deeplesion_sample.root / "Images_png")
    report = ingest_path(engine, settings, again, kind="deeplesion", name="again")
    assert report.items == ingested.items and not [p for p in report.problems if "Images_png" not in str(p)]
    assert _current_recists(engine, report.dataset_id) == _current_recists(engine, ds)

    # `--annotations dataset`: the source table as it was, whatever was edited
    original = _export(client, reviewer, dataset_id=ds, format="deeplesion-csv", annotations="dataset")
    assert original.decode().splitlines() == source_lines


# pycocotools' RLE decoder (2.0.x, Cython) hands numpy 2 an old-style __array__: a harmless deprecation warning
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
def test_coco_csv_and_masks_png_of_bis5k(client, settings, bis_dataset_id, bis_root):
    reviewer = _as(settings, "rev", "reviewer")
    items = client.get(f"/api/datasets/{bis_dataset_id}/items", params={"limit": 50}).json()["items"]
    accepted = items[0]
    r = client.post(f"/api/items/{accepted['id']}/reviews", json={"verdict": "accept"}, headers=reviewer)
    assert r.status_code in (200, 201), r.text

    table = _export(client, reviewer, dataset_id=bis_dataset_id, format="csv",
                    filters={"review_status": "accepted,corrected"})
    rows = list(csv.DictReader(io.StringIO(table.decode())))
    assert [(r["key"], r["review_status"], r["verdict:rev"]) for r in rows] == [(accepted["key"], "accepted", "accept")]
    everything = list(csv.DictReader(io.StringIO(_export(client, reviewer, dataset_id=bis_dataset_id,
                                                         format="csv").decode())))
    assert [r["key"] for r in everything] == [i["key"] for i in sorted(items, key=lambda i: i["id"])]

    coco_bytes = _export(client, reviewer, dataset_id=bis_dataset_id, format="coco")
    path = Path(settings.data_dir) / "coco-check.json"
    path.write_bytes(coco_bytes)
    coco = COCO(str(path))
    checked = 0
    for image in coco.dataset["images"]:
        mask_file = bis_root / Path(image["file_name"]).parent.parent / "masks" / Path(image["file_name"]).name
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]]))
        if not mask_file.exists():
            assert not anns
            continue
        truth = cv2.imread(str(mask_file), cv2.IMREAD_GRAYSCALE) > 0
        decoded = np.zeros_like(truth)
        for a in anns:
            decoded |= coco.annToMask(a).astype(bool)
        assert np.array_equal(decoded, truth), image["file_name"]
        checked += 1
    assert checked == len(items) - 1  # every image with a mask (one has none)

    archive = zipfile.ZipFile(io.BytesIO(_export(client, reviewer, dataset_id=bis_dataset_id, format="masks-png")))
    names = set(archive.namelist())
    for i in items:
        assert archive.read(i["key"]) == (bis_root / i["key"]).read_bytes()
    masks = [n for n in names if "/masks/" in n]
    assert len(masks) == len(items) - 1
    for name in masks:
        got = cv2.imdecode(np.frombuffer(archive.read(name), np.uint8), cv2.IMREAD_GRAYSCALE) > 0
        assert np.array_equal(got, cv2.imread(str(bis_root / name), cv2.IMREAD_GRAYSCALE) > 0)


def test_bad_input_and_who_may_export(anon_client, settings, ingested):
    client = anon_client  # no default credentials: each request names its own
    ds = ingested.dataset_id
    reviewer = _as(settings, "rev", "reviewer")
    bad = [
        ({"dataset_id": ds, "format": "tiff"}, 400, "unknown format"),
        ({"dataset_id": ds, "format": "masks-png"}, 400, "does not fit a deeplesion dataset"),
        ({"dataset_id": ds, "format": "csv", "filters": {"split": "nowhere"}}, 400, "no item"),
        ({"dataset_id": ds, "format": "csv", "filters": {"organ": "liver"}}, 400, "unknown filter 'organ'"),
        ({"dataset_id": 9999, "format": "csv"}, 404, "dataset 9999"),
        ({"dataset_id": ds, "format": "csv", "annotations": "mine"}, 422, "annotations"),
    ]
    for body, status, words in bad:
        r = client.post("/api/exports", json=body, headers=reviewer)
        assert r.status_code == status and words in r.json()["detail"], (body, r.text)
    assert client.get("/api/exports", headers=reviewer).json() == []  # nothing was queued

    ok = {"dataset_id": ds, "format": "csv"}
    for method, path, body in [("POST", "/api/exports", ok), ("GET", "/api/exports", None),
                               ("GET", "/api/exports/1", None), ("GET", "/api/exports/1/download", None)]:
        assert client.request(method, path, json=body).status_code == 401
        for role in ("viewer", "annotator"):
            r = client.request(method, path, json=body, headers=_as(settings, f"u-{role}", role))
            assert r.status_code == 403 and "reviewer" in r.json()["detail"], (method, path, role)
    assert client.get("/api/exports/9999/download", headers=reviewer).status_code == 404
    assert client.get("/exports", headers={"accept": "text/html", **_as(settings, "u-viewer", "viewer")},
                      follow_redirects=False).status_code == 403
    page = client.get("/exports", headers=reviewer)
    assert page.status_code == 200 and "Start export" in page.text


@pytest.mark.realdata
def test_real_deeplesion_rows_come_back_verbatim(client, settings, engine, realdata):
    root = realdata("deeplesion")
    report = ingest_path(engine, settings, root, kind="deeplesion", name="real")
    body = _export(client, _as(settings, "rev", "reviewer"), dataset_id=report.dataset_id, format="deeplesion-csv")
    source = (root / "DL_info.csv").read_text().splitlines()
    exported = body.decode().splitlines()
    assert exported[0] == source[0] and len(exported) == 24
    assert set(exported[1:]) <= set(source[1:])  # the 23 rows that have their PNGs, unchanged
    # COCO of the same: each lesion's keypoints and box are the table's numbers (read here with the csv module)
    table = {(r["File_name"], r["Measurement_coordinates"]): r
             for r in csv.DictReader(io.StringIO((root / "DL_info.csv").read_text()))}
    path = Path(settings.data_dir) / "real-coco.json"
    path.write_bytes(_export(client, _as(settings, "rev", "reviewer"), dataset_id=report.dataset_id, format="coco"))
    coco = COCO(str(path))
    names = {i["id"]: i["file_name"] for i in coco.dataset["images"]}
    assert len(coco.dataset["annotations"]) == 23
    for a in coco.dataset["annotations"]:
        k = a["keypoints"]
        points = [k[0], k[1], k[3], k[4], k[6], k[7], k[9], k[10]]
        row = table[(names[a["image_id"]], numbers(points))]
        x1, y1, x2, y2 = (float(v) for v in row["Bounding_boxes"].split(","))
        assert a["bbox"] == pytest.approx([x1, y1, x2 - x1, y2 - y1])
        assert coco.loadCats(a["category_id"])[0]["name"] == "liver"
    # and the published boxes are the RECIST end points' extent ± 5 px (to the file's printed precision)
    for row in csv.DictReader(io.StringIO((root / "DL_info.csv").read_text())):
        c = [float(v) for v in row["Measurement_coordinates"].split(",")]
        box = [min(c[0::2]) - 5, min(c[1::2]) - 5, max(c[0::2]) + 5, max(c[1::2]) + 5]
        printed = [float(v) for v in row["Bounding_boxes"].split(",")]
        assert all(math.isclose(a, b, abs_tol=2e-3) for a, b in zip(box, printed, strict=True))


def test_csv_carries_predictions_and_metrics(client, settings, pcam_predicted):
    dataset_id, model_id = pcam_predicted
    model = client.get(f"/api/models/{model_id}").json()["name"]
    rows = list(csv.DictReader(io.StringIO(_export(client, _as(settings, "rev", "reviewer"), dataset_id=dataset_id,
                                                   format="csv", filters={"split": "valid"}).decode())))
    assert rows and {r["split"] for r in rows} == {"valid"}
    assert any(c.startswith(f"{model}:") and "probabilities" not in c and c != f"{model}:label" for c in rows[0])
    for row in rows:
        item = client.get(f"/api/items/{row['item_id']}").json()
        (prediction,) = [p for p in item["predictions"] if p["model_id"] == model_id]
        assert row[f"{model}:label"] == str(prediction["outputs"]["label"])
        for i, p in enumerate(prediction["outputs"]["probabilities"]):
            assert float(row[f"{model}:probabilities[{i}]"]) == pytest.approx(p)
        for name, value in prediction["metrics"].items():
            assert float(row[f"{model}:{name}"]) == pytest.approx(float(value)), name


@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
def test_an_edited_mask_is_exported_and_the_others_are_untouched(client, settings, bis_dataset_id, bis_root):
    """A brush edit (a stored user mask version) is what `masks-png` and `coco` export for that image with the
    default `annotations=current`; `annotations=dataset` gives the dataset's file back; every other mask file
    is copied byte for byte."""
    reviewer = _as(settings, "rev", "reviewer")
    items = client.get(f"/api/datasets/{bis_dataset_id}/items", params={"limit": 50}).json()["items"]
    edited = next(d for d in (client.get(f"/api/items/{i['id']}").json() for i in items)
                  if any(a["kind"] == "mask" for a in d["annotations"]))
    ann = next(a for a in edited["annotations"] if a["kind"] == "mask")
    painted = np.zeros((edited["height"], edited["width"]), np.uint8)
    painted[5:25, 30:60] = 255
    png = base64.b64encode(cv2.imencode(".png", painted)[1].tobytes()).decode()
    r = client.put(f"/api/annotations/{ann['id']}", json={"version": ann["version"], "geometry": {"png": png}},
                   headers=_as(settings, "ann", "annotator"))
    assert r.status_code == 200, r.text

    archive = zipfile.ZipFile(io.BytesIO(_export(client, reviewer, dataset_id=bis_dataset_id, format="masks-png")))
    edited_name = ann["geometry"]["mask"]
    got = cv2.imdecode(np.frombuffer(archive.read(edited_name), np.uint8), cv2.IMREAD_GRAYSCALE) > 0
    assert np.array_equal(got, painted > 0)
    for name in (n for n in archive.namelist() if "/masks/" in n and n != edited_name):
        assert archive.read(name) == (bis_root / name).read_bytes()
    original = zipfile.ZipFile(io.BytesIO(_export(client, reviewer, dataset_id=bis_dataset_id, format="masks-png",
                                                  annotations="dataset")))
    assert original.read(edited_name) == (bis_root / edited_name).read_bytes()

    path = Path(settings.data_dir) / "coco-edited.json"
    path.write_bytes(_export(client, reviewer, dataset_id=bis_dataset_id, format="coco"))
    coco = COCO(str(path))
    image = next(i for i in coco.dataset["images"] if Path(i["file_name"]).name == Path(edited["key"]).name)
    decoded = np.zeros_like(painted, dtype=bool)
    for a in coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]])):
        decoded |= coco.annToMask(a).astype(bool)
    assert np.array_equal(decoded, painted > 0)
