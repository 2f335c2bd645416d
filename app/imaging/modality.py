"""What an item's grey values mean, from its modality: the units the viewer names and the windows it offers.

Only CT values are Hounsfield units, so only CT gets "HU" wording and the named CT presets (lung, bone, …). An MR
series' values have no fixed scale: a lung window on them is meaningless and "0 to 1400 HU" is false. MR and the
other modalities (PET, radiographs, …) are offered the file's own VOI window (DICOM WindowCenter/WindowWidth, the
first pair) when it has one, and a percentile auto-window of the volume's (or image's) values
(app.imaging.presets.percentile_window). The modality comes from the item's meta (DICOM Modality); an item with
a window of its own and no stated modality (DeepLesion, VerSe, plain NIfTI volumes) is CT.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.imaging.presets import AUTO_PRESET

HOUNSFIELD_MODALITIES = frozenset({"CT"})
OWN_PRESET = "default"  # the item's own window, as app.imaging.presets.OWN_WINDOW_NAMES
# DICOM Modality codes users read more easily spelled out (the corner readout and titles)
MODALITY_NAMES = {"CT": "CT", "MR": "MR", "PT": "PET", "NM": "nuclear medicine", "CR": "radiograph",
                  "DX": "radiograph", "MG": "mammogram", "US": "ultrasound", "XA": "angiogram"}


def item_modality(meta: Mapping[str, Any] | None, has_window: bool) -> str | None:
    """The item's modality code: meta's `modality` when stated (upper-cased), else "CT" for an item with a window
    of its own (CT datasets), else None (photos, histology patches: colour or 8-bit grey, nothing to window)."""
    stated = (meta or {}).get("modality")
    if isinstance(stated, str) and stated.strip():
        return stated.strip().upper()
    return "CT" if has_window else None


@dataclass(frozen=True)
class WindowPolicy:
    """How the viewer windows an item: `units` ("HU" for CT, "" otherwise: values in the file's own units), the
    preset names it offers in keyboard order, and the one shown when the URL names none."""

    modality: str | None
    units: str
    presets: tuple[str, ...]
    default: str

    @property
    def hounsfield(self) -> bool:
        return self.units == "HU"


def window_policy(modality: str | None, has_window: bool, own_from_file: bool,
                  ct_presets: Sequence[str]) -> WindowPolicy:
    """CT: HU and `ct_presets` (whose first is the item's own window). Other windowed modalities: the file's own
    VOI window when it has one (`own_from_file`), and the auto-window, which is the default when the file has no
    window (a stored-value range is no useful default). Nothing windowed (RGB, 8-bit grey): no presets."""
    if not has_window:
        return WindowPolicy(modality, "", (), OWN_PRESET)
    if modality is None or modality in HOUNSFIELD_MODALITIES:
        return WindowPolicy(modality or "CT", "HU", tuple(ct_presets), OWN_PRESET)
    presets = ((OWN_PRESET,) if own_from_file else ()) + (AUTO_PRESET,)
    return WindowPolicy(modality, "", presets, presets[0])


def modality_name(modality: str | None) -> str:
    return MODALITY_NAMES.get(modality or "", modality or "")
