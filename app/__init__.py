"""MedView: browse, render and review medical-imaging ML datasets."""

__version__ = "0.1.0"
