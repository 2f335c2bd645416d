"""DICOM headers read without pixels: files found by content, preamble-less streams, odd objects, the sample."""

from __future__ import annotations

import hashlib

import numpy as np
import pydicom
from pydicom.misc import is_dicom

from app.datasets.dicom.headers import Header, NonImage, Unreadable, read_header, walk_files
from app.datasets.dicom.synth import generate_dicom


def digest(root) -> dict[str, str]:
    return {rel: hashlib.sha256((root / rel).read_bytes()).hexdigest() for rel, _ in walk_files(root)}


def test_sample_is_valid_part10_and_reproducible(tmp_path):
    a = generate_dicom(tmp_path / "a", seed=5)
    b = generate_dicom(tmp_path / "b", seed=5)
    assert digest(a.root) == digest(b.root)  # same seed, same bytes
    files = [rel for rel, _ in walk_files(a.root)]
    assert len(files) == 30 + 1 + 16 + 20 + 2
    assert all(is_dicom(a.root / rel) for rel in files if rel != a.junk) and not is_dicom(a.root / a.junk)
    axial = max(a.series.values(), key=len)
    assert len(axial) == 30 and all("." not in rel.rpartition("/")[2] for rel in axial)  # no extensions
    ds = pydicom.dcmread(a.root / axial[0])
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian


def test_enhanced_multiframe_positions_per_frame(tmp_path):
    sample = generate_dicom(tmp_path, seed=2)
    h = read_header(tmp_path, sample.multiframe)
    assert isinstance(h, Header) and h.frames == 12 and h.iop == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    ds = pydicom.dcmread(tmp_path / sample.multiframe)
    z = [g.PlanePositionSequence[0].ImagePositionPatient[2] for g in ds.PerFrameFunctionalGroupsSequence]
    assert [p[2] for p in h.positions] == z and h.window == (-600.0, 1500.0) and h.pixel_spacing == (3.0, 3.0)


def test_stream_without_preamble_is_read(tmp_path):
    sample = generate_dicom(tmp_path / "s", seed=1)
    rel = next(iter(sample.series.values()))[0]
    ds = pydicom.dcmread(sample.root / rel)
    del ds.file_meta
    ds.preamble = None
    ds.save_as(tmp_path / "bare", implicit_vr=True, little_endian=True)  # no preamble, no file meta
    assert (tmp_path / "bare").read_bytes()[:2] == b"\x08\x00"
    h = read_header(tmp_path, "bare")
    assert isinstance(h, Header) and h.series_uid == ds.SeriesInstanceUID and h.rows == ds.Rows


def test_non_images_colour_and_junk(tmp_path):
    sample = generate_dicom(tmp_path, seed=1)
    rt = read_header(tmp_path, sample.rtstruct)
    assert isinstance(rt, NonImage) and rt.modality == "RTSTRUCT" and rt.sop_class == "RT Structure Set Storage"
    junk = read_header(tmp_path, sample.junk)
    assert isinstance(junk, Unreadable) and "not a DICOM file" in junk.reason
    ds = pydicom.dcmread(tmp_path / next(iter(sample.series.values()))[0])
    rgb = np.zeros((ds.Rows, ds.Columns, 3), np.uint8)
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelData = 8, 8, 7, rgb.tobytes()
    ds.save_as(tmp_path / "photo", enforce_file_format=True)
    colour = read_header(tmp_path, "photo")
    assert isinstance(colour, Unreadable) and "colour images (3 samples per pixel, RGB)" in colour.reason
