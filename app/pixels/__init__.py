"""The pixel layer: from an item id to its decoded pixels, for the renderer and for inference alike.

- `DataRoots` (`app.datasets.roots`, shared with ingest): the folders that may be read, on real paths;
- `targets`: what is read of an item's row to find its pixels (`ItemTarget`), in three queries per page;
- `store`: `PixelStore`, the per-app decoded-image and volume caches and the calls into the dataset's
  adapter (read a view, its ground-truth overlay, its volume).

`render` (window → overlay → encode) and `inference` (preprocess → model) both sit on top of this package;
neither reaches into the other, and nothing here knows HTTP.
"""

from app.datasets.roots import DataRoots
from app.pixels.store import PixelStore, PixelUnavailable
from app.pixels.targets import AnnotationView, ItemTarget

__all__ = ["AnnotationView", "DataRoots", "ItemTarget", "PixelStore", "PixelUnavailable"]
