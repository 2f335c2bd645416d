"""DICOM folders: series grouped by patient / study / series, slices ordered by position."""
