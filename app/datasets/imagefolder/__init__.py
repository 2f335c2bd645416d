"""Image folders: one sub-folder per class, or images anywhere plus sparsam-style split CSVs."""
