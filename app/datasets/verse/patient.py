"""VerSe's patient page: a subject's sessions (BIDS `ses-`), each with its CT volumes, what each volume covers and
which ground truth it has. A subject whose files name no session (the common case: `sub-verse004_ct.nii.gz`) has
its volumes in one section; VerSe has no study dates, ages or lesions, so the page speaks of none."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from app.datasets.patients import SEX_NAMES, Entry, PatientPage, Section, capital, counted

SPLITS = {"train": "training", "val": "validation", "test": "test"}
GROUND_TRUTH = {(True, True): "vertebra mask + centroids", (True, False): "vertebra mask",
                (False, True): "centroids", (False, False): "no ground truth"}


class VersePatientPage(PatientPage):
    def sections(self, studies: Sequence[Mapping[str, Any]], loose: Sequence[Mapping[str, Any]]) -> list[Section]:
        """One section per session (in session order), the volumes without a session last."""
        by_session: dict[str | None, list[Mapping[str, Any]]] = {}
        for item in [*(i for s in studies for i in s["items"]), *loose]:
            by_session.setdefault((item.get("meta") or {}).get("session"), []).append(item)
        sessions = sorted(s for s in by_session if s is not None)
        out = [Section(anchor=f"ses-{s}", title=f"Session {s}",
                       details=(counted(len(by_session[s]), self.unit, self.units),),
                       entries=tuple(self.entry(i) for i in by_session[s])) for s in sessions]
        if None in by_session:
            items = by_session[None]
            out.append(Section(anchor="volumes", title="Without a session" if sessions else capital(self.units),
                               details=(counted(len(items), self.unit, self.units),
                                        "the file names name no session (ses-)"),
                               entries=tuple(self.entry(i) for i in items)))
        return out

    def entry(self, item: Mapping[str, Any]) -> Entry:
        meta = item.get("meta") or {}
        vertebrae = meta.get("vertebrae") or []
        spacing = item.get("spacing") or []
        dims = "×".join(str(v) for v in (item.get("width"), item.get("height"), item.get("depth")) if v)
        details = [counted(len(vertebrae), "vertebra", "vertebrae") if vertebrae else "vertebrae not listed",
                   GROUND_TRUTH[bool(meta.get("mask_shown")), bool(meta.get("vertebrae_source") == "ctd")]]
        if dims:
            mm = "×".join(f"{v:g}" for v in spacing) if len(set(spacing)) > 1 else f"{spacing[0]:g}" if spacing else ""
            details.append(f"{dims} voxels" + (f", {mm} mm" if mm else ""))
        if item.get("split"):
            details.append(f"{SPLITS.get(item['split'], item['split'])} split")
        span = item.get("label")
        return Entry(item["id"], f"CT {span}" if span else "CT", tuple(details), uid=item["key"])

    def summary(self, sex: str | None, studies: Sequence[Mapping[str, Any]], sections: Sequence[Section],
                ) -> list[str]:
        items = sum(len(s.entries) for s in sections)
        sessions = sum(1 for s in sections if s.anchor.startswith("ses-"))
        return [*((SEX_NAMES.get(sex, sex),) if sex else ()),
                *((counted(sessions, self.group, self.groups),) if sessions else ()),
                counted(items, self.unit, self.units)]


PATIENT_PAGE = VersePatientPage(group="session", groups="sessions", unit="CT volume", units="CT volumes")
