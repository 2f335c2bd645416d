"""DICOM PatientAge (VR AS) read as years for the age facet; anonymisation placeholders and bad values are unknown
(issue 14: "000Y" was shown as "0 y" and counted in "0-9")."""

from __future__ import annotations

import pytest

from app.datasets.dicom.headers import parse_age, parse_as
from app.datasets.dicom.records import age_band


@pytest.mark.parametrize(("text", "years"), [
    ("045Y", 45.0), ("045Y ", 45.0), ("045y", 45.0), ("006M", 0.5), ("018M", 1.5), ("010D", 0.03), ("002W", 0.04),
    ("052W", 1.0), ("100Y", 100.0), ("45Y", 45.0), ("045 Y", 45.0), ("001D", 0.0),
])
def test_age_strings_in_years(text, years):
    assert parse_as(text) == years


@pytest.mark.parametrize("text", [
    "000Y", "000D", "000M", "000W", "0Y",  # anonymisers' placeholders: unknown, never 0
    "", "   ", "Y", "045", "45", "045X", "-45Y", "4.5Y", "0045Y", "045YY", "Y045", "abcd", "999Y", "200Y",
])
def test_placeholders_and_bad_values_are_unknown(text):
    assert parse_as(text) is None
    assert parse_age(text) is None


def test_dates_stand_in_only_for_an_unknown_age_string():
    assert parse_age("054Y", "19000101", "20190301") == 54.0  # the age string wins
    assert parse_age("000Y", "19650312", "20190301") == 53.0  # placeholder: from the dates (birthday not yet)
    assert parse_age("", "19650301", "20190301") == 54.0
    assert parse_age("000Y", "", "20190301") is None
    assert parse_age("000Y", "1965031", "20190301") is None  # malformed date
    assert parse_age("", "20200101", "20190301") is None  # born after the study


def test_age_band_of_babies_and_unknown():
    assert age_band(parse_as("006M")) == "0-9" and age_band(parse_as("045Y")) == "40-49"
    assert age_band(parse_as("000Y")) is None
