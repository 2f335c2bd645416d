"""Synthetic DICOM folder in the layout scanners and PACS exports produce: files without extension, names
unrelated to slice order, several patients/studies/series mixed in one folder.

Pure generator (no database, no HTTP) used by `medview demo` and the tests. Pixels come from the shared CT
phantom (app.datasets.ct_phantom), so every series shows a plausible body. Written with pydicom as valid
Part 10 files (preamble, file meta, Explicit VR Little Endian).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian, generate_uid

from app.datasets.ct_phantom import ct_phantom_slice

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2.1"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
RT_STRUCTURE_SET = "1.2.840.10008.5.1.4.1.1.481.3"
AXIAL_IOP = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]


@dataclass
class GeneratedDicom:
    """What `generate_dicom` wrote: series UID → its files (relative to root), and the odd files."""

    root: Path
    series: dict[str, list[str]] = field(default_factory=dict)
    multiframe: str = ""
    rtstruct: str = ""
    junk: str = ""
    patients: tuple[str, ...] = ()


class _Writer:
    def __init__(self, root: Path, seed: int):
        self.root, self.seed = root, seed
        self.rng = np.random.default_rng(seed)
        self.names = iter(self.rng.permutation(90000) + 10000)

    def uid(self, *parts: object) -> str:
        return generate_uid(entropy_srcs=["medview-dicom", str(self.seed), *map(str, parts)])

    def write(self, ds: Dataset, sop_class: str, folder: str = "DICOM", name: str | None = None) -> str:
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = UID(sop_class)
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds.file_meta = meta
        ds.SOPClassUID = sop_class
        rel = f"{folder}/{name or f'IM{next(self.names):05d}'}"
        (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(self.root / rel, enforce_file_format=True)
        return rel


def _patient_study(ds: Dataset, patient: dict, study: dict) -> None:
    ds.PatientName, ds.PatientID = patient["name"], patient["id"]
    ds.PatientSex, ds.PatientAge, ds.PatientBirthDate = patient["sex"], patient["age"], patient["birth"]
    ds.StudyInstanceUID, ds.StudyDate, ds.StudyTime = study["uid"], study["date"], "093000"
    ds.StudyDescription, ds.StudyID, ds.AccessionNumber = study["description"], study["id"], study["id"]


def _image(patient: dict, study: dict, series: dict, pixels: np.ndarray, signed: bool) -> Dataset:
    ds = Dataset()
    _patient_study(ds, patient, study)
    ds.Modality, ds.SeriesInstanceUID = series["modality"], series["uid"]
    ds.SeriesNumber, ds.SeriesDescription = series["number"], series["description"]
    ds.BodyPartExamined, ds.Manufacturer = series["body_part"], "MedView Synthetic"
    ds.ManufacturerModelName, ds.FrameOfReferenceUID = "Phantom 1", study["frame_uid"]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape[-2:]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1 if signed else 0
    ds.PixelData = pixels.astype(np.int16 if signed else np.uint16).tobytes()
    return ds


def _ct_stored(hu: np.ndarray) -> np.ndarray:
    return np.clip(hu.astype(np.int32) + 1024, 0, 4095)  # RescaleIntercept −1024, slope 1


def _axial_ct(w: _Writer, patient: dict, study: dict, series: dict, z_mm: list[float], size: int, px: float,
              ipp_for, iop: list[float], extra: dict) -> list[str]:
    files = []
    half = (size - 1) / 2 * px
    for n, z in enumerate(z_mm):
        hu = ct_phantom_slice(z, size, px, np.random.default_rng((w.seed, int(z * 10))))
        ds = _image(patient, study, series, _ct_stored(hu), signed=extra.get("signed", False))
        ds.SOPInstanceUID = w.uid(series["uid"], n)
        ds.InstanceNumber, ds.AcquisitionNumber = n + 1, 1
        ds.ImagePositionPatient, ds.ImageOrientationPatient = ipp_for(n, z, half), iop
        ds.PixelSpacing, ds.SliceThickness = [px, px], series["thickness"]
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        for key, value in extra.items():
            if key != "signed":
                setattr(ds, key, value)
        files.append(w.write(ds, CT_IMAGE))
    return files


def _enhanced_ct(w: _Writer, patient: dict, study: dict, series: dict) -> str:
    size, px, step = 128, 3.0, 6.0
    z_mm = [546.0 - step * f for f in range(12)]  # stored superior first: the reader must sort
    frames = np.stack([_ct_stored(ct_phantom_slice(z, size, px, np.random.default_rng((w.seed, int(z)))))
                       for z in z_mm])
    ds = _image(patient, study, series, frames, signed=False)
    ds.SOPInstanceUID = w.uid(series["uid"], "mf")
    ds.NumberOfFrames, ds.InstanceNumber, ds.ImageType = len(z_mm), 1, ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    ds.ContentDate, ds.ContentTime = study["date"], "093500"
    shared = Dataset()
    measures, orientation, transform, voi = Dataset(), Dataset(), Dataset(), Dataset()
    measures.PixelSpacing, measures.SliceThickness = [px, px], step
    orientation.ImageOrientationPatient = AXIAL_IOP
    transform.RescaleIntercept, transform.RescaleSlope, transform.RescaleType = -1024, 1, "HU"
    voi.WindowCenter, voi.WindowWidth = -600, 1500
    shared.PixelMeasuresSequence, shared.PlaneOrientationSequence = Sequence([measures]), Sequence([orientation])
    shared.PixelValueTransformationSequence, shared.FrameVOILUTSequence = Sequence([transform]), Sequence([voi])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    half = (size - 1) / 2 * px
    groups = []
    for f, z in enumerate(z_mm):
        group, position, content = Dataset(), Dataset(), Dataset()
        position.ImagePositionPatient = [-half, -half, z]
        content.FrameAcquisitionNumber, content.InStackPositionNumber = f + 1, len(z_mm) - f
        group.PlanePositionSequence, group.FrameContentSequence = Sequence([position]), Sequence([content])
        groups.append(group)
    ds.PerFrameFunctionalGroupsSequence = Sequence(groups)
    return w.write(ds, ENHANCED_CT_IMAGE, folder="DICOM/enhanced", name="CT_MF.dcm")


def _sagittal_mr(w: _Writer, patient: dict, study: dict, series: dict) -> list[str]:
    """Sagittal slices cut from a stack of phantom axial slices; rows run superior → inferior."""
    size, px, rows = 128, 3.0, 96
    z_top = 200.0 + (rows - 1) * px
    volume = np.stack([ct_phantom_slice(z_top - r * px, size, px, np.random.default_rng((w.seed, r)))
                       for r in range(rows)])  # [row (z down), y (posterior), x (patient left)]
    mr = np.clip((volume.astype(np.float32) + 1000.0) * 0.9, 0, 2000).astype(np.uint16)
    half = (size - 1) / 2 * px
    files = []
    for n, col in enumerate(range(14, 114, 5)):
        ds = _image(patient, study, series, mr[:, :, col], signed=False)
        ds.BitsStored, ds.HighBit = 12, 11
        ds.SOPInstanceUID = w.uid(series["uid"], n)
        ds.InstanceNumber = n + 1
        ds.ImageOrientationPatient = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]
        ds.ImagePositionPatient = [-half + col * px, -half, z_top]
        ds.PixelSpacing, ds.SliceThickness, ds.SpacingBetweenSlices = [px, px], 4.0, 5 * px
        ds.WindowCenter, ds.WindowWidth = 700, 1400
        ds.MagneticFieldStrength, ds.EchoNumbers = 1.5, 1
        files.append(w.write(ds, MR_IMAGE))
    return files


def _rtstruct(w: _Writer, patient: dict, study: dict, referenced: str) -> str:
    ds = Dataset()
    _patient_study(ds, patient, study)
    ds.Modality, ds.SeriesInstanceUID, ds.SeriesNumber = "RTSTRUCT", w.uid("rtstruct-series"), 99
    ds.SOPInstanceUID = w.uid("rtstruct")
    ds.StructureSetLabel, ds.StructureSetDate = "Phantom ROIs", study["date"]
    roi = Dataset()
    roi.ROINumber, roi.ROIName, roi.ReferencedFrameOfReferenceUID = 1, "liver", referenced
    ds.StructureSetROISequence = Sequence([roi])
    ref = Dataset()
    ref.FrameOfReferenceUID = referenced
    ds.ReferencedFrameOfReferenceSequence = Sequence([ref])
    return w.write(ds, RT_STRUCTURE_SET)


def generate_dicom(root: Path, *, seed: int = 0) -> GeneratedDicom:
    """Two patients, three studies: an axial CT (30 slices), an enhanced multi-frame CT follow-up, a CT with
    a 15° gantry tilt and no window, a sagittal MR; plus an RTSTRUCT and a junk file, all in one folder."""
    root.mkdir(parents=True, exist_ok=True)
    w = _Writer(root, seed)
    out = GeneratedDicom(root)
    p1 = {"name": "Phantom^Alice", "id": "MV-DCM-001", "sex": "F", "age": "054Y", "birth": "19650312"}
    p2 = {"name": "Phantom^Bob", "id": "MV-DCM-002", "sex": "M", "age": "067Y", "birth": "19530101"}
    out.patients = (p1["id"], p2["id"])
    s_a, s_b, s_c = [
        {"uid": w.uid(name), "frame_uid": w.uid(name, "frame"), "date": date, "description": desc, "id": sid}
        for name, date, desc, sid in (("study-a", "20190301", "CT ABDOMEN W CONTRAST", "A1001"),
                                      ("study-b", "20190912", "CT CHEST FOLLOW-UP", "A1002"),
                                      ("study-c", "20200505", "CT ABDOMEN + MR", "A2001"))]

    def series(name: str, number: int, modality: str, description: str, body: str, thickness: float) -> dict:
        return {"uid": w.uid("series", name), "number": number, "modality": modality, "description": description,
                "body_part": body, "thickness": thickness}

    axial = series("axial", 2, "CT", "AX ABD 5mm", "ABDOMEN", 5.0)
    out.series[axial["uid"]] = _axial_ct(
        w, p1, s_a, axial, [205.0 + 5 * n for n in range(30)], 256, 1.5,
        lambda n, z, half: [-half, -half, z], AXIAL_IOP,
        {"WindowCenter": [40, -600], "WindowWidth": [400, 1500]})
    enhanced = series("enhanced", 5, "CT", "CHEST ENHANCED MF", "CHEST", 6.0)
    out.multiframe = _enhanced_ct(w, p1, s_b, enhanced)
    out.series[enhanced["uid"]] = [out.multiframe]
    tilt = math.radians(15.0)
    tilted = series("tilt", 3, "CT", "AX TILT 15", "ABDOMEN", 4.0)
    out.series[tilted["uid"]] = _axial_ct(
        w, p2, s_c, tilted, [240.0 + 4 * n for n in range(16)], 160, 2.0,
        lambda n, z, half: [-half, -half * math.cos(tilt), z - half * math.sin(tilt)],
        [1.0, 0.0, 0.0, 0.0, math.cos(tilt), math.sin(tilt)], {"GantryDetectorTilt": 15.0, "signed": True})
    sagittal = series("sagittal", 4, "MR", "SAG T1", "ABDOMEN", 4.0)
    out.series[sagittal["uid"]] = _sagittal_mr(w, p2, s_c, sagittal)
    out.rtstruct = _rtstruct(w, p2, s_c, s_c["frame_uid"])
    out.junk = "DICOM/IM00001"
    (root / out.junk).write_bytes(w.rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return out


def demo_sample(root: Path) -> GeneratedDicom:
    return generate_dicom(root, seed=0)
