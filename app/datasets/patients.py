"""The patient page's declaration: how a kind groups one patient's items and what it says about each group and item.

Every kind has different levels under a patient (DeepLesion: studies of key slices with lesions measured across
them; VerSe: a subject's sessions of CT volumes; DICOM: studies by date and description, each with its series), so
the page (templates/patient.html) knows none of them: it renders the `Section`s and `Entry`s the adapter's
`patient_page` makes from plain dicts the catalog reads (app.catalog.queries.patient_timeline). Identifiers that
are long machine strings (DICOM UIDs) go in `uid`, which the page prints as small secondary text, never as a
heading. Plain data in, plain data out: no SQL, no HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SEX_NAMES = {"M": "male", "F": "female", "O": "other"}


def counted(n: int, one: str, many: str) -> str:
    """'1 study', '3 studies'."""
    return f"{n} {one if n == 1 else many}"


def capital(text: str) -> str:
    """First letter upper case, the rest as it is ('CT volumes', not str.capitalize's 'Ct volumes')."""
    return text[:1].upper() + text[1:]


def years(age: float | None) -> str:
    """An age for display: whole years as '54', a baby's as '0.5' (at most 2 decimals)."""
    return "" if age is None else f"{age:g}" if age >= 1 or age == 0 else f"{age:.2g}"


@dataclass(frozen=True)
class Entry:
    """One item of a section: a title (what it is), detail phrases, and an identifier as small print."""

    item_id: int
    title: str
    details: tuple[str, ...] = ()
    uid: str = ""


@dataclass(frozen=True)
class Section:
    """One group of a patient's items (a study, a session): heading, detail phrases, identifier as small print."""

    anchor: str  # the page fragment (#anchor): stable, URL-safe
    title: str
    details: tuple[str, ...] = ()
    uid: str = ""
    study: str | None = None  # the study's external id, when the section is one study
    entries: tuple[Entry, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class PatientPage:
    """A kind's patient page. The default groups items by study (in study order), then the items without one, and
    titles each item by its key. `followup`: the page also tracks RECIST lesions across studies (DeepLesion);
    `unit`/`units`: what an item is called (key slice, CT volume, series); `group`/`groups`: what a section is."""

    group: str = "study"
    groups: str = "studies"
    unit: str = "item"
    units: str = "items"
    followup: bool = False

    def sections(self, studies: Sequence[Mapping[str, Any]], loose: Sequence[Mapping[str, Any]]) -> list[Section]:
        """`studies`: {study, order, age, items} in study order; `loose`: items of the patient in no study. Items
        are item summaries with `meta`."""
        out = [Section(anchor=f"study-{n}", title=f"{capital(self.group)} {s['study']}",
                       details=self.study_details(s), study=s["study"],
                       entries=tuple(self.entry(i) for i in s["items"]))
               for n, s in enumerate(studies, 1)]
        if loose:
            out.append(Section(anchor="other", title=f"{capital(self.units)} in no {self.group}",
                               details=(counted(len(loose), self.unit, self.units),),
                               entries=tuple(self.entry(i) for i in loose)))
        return out

    def study_details(self, study: Mapping[str, Any]) -> tuple[str, ...]:
        age = years(study.get("age"))
        return (*((f"#{study['order']}",) if study.get("order") is not None else ()),
                *((f"age {age}",) if age else ()), counted(len(study["items"]), self.unit, self.units))

    def entry(self, item: Mapping[str, Any]) -> Entry:
        return Entry(item["id"], item["key"], tuple(d for d in (item.get("split"),) if d))

    def item_title(self, item: Mapping[str, Any]) -> str | None:
        """A readable name where the item's key is not one (a DICOM series' UID), for the grid's card and the item
        page's heading and tab; None shows the key. `item` has at least `key` and `meta`."""
        return None

    def study_title(self, item: Mapping[str, Any]) -> str | None:
        """The item's study by date and description where the study's id is a UID; None shows the id."""
        return None

    def summary(self, sex: str | None, studies: Sequence[Mapping[str, Any]], sections: Sequence[Section],
                ) -> list[str]:
        """The phrases after the patient's id in the page title: sex, how many groups and items, age range."""
        items = sum(len(s.entries) for s in sections)
        ages = [s["age"] for s in studies if s.get("age") is not None]
        out = [SEX_NAMES.get(sex or "", sex or "sex unknown"), counted(len(studies), self.group, self.groups),
               counted(items, self.unit, self.units)]
        if ages:
            low, high = years(min(ages)), years(max(ages))
            out.append(f"age {low}" + (f"–{high}" if high != low else ""))
        return out


# DeepLesion: key slices in studies, RECIST lesions tracked across them (app.catalog.followup).
LESION_FOLLOWUP = PatientPage(unit="key slice", units="key slices", followup=True)
