"""The data roots (MEDVIEW_DATA_ROOTS): the only folders whose files MedView reads, ingests or serves.

One check for every caller (the ingest driver, the pixel layer `app.pixels`, the demo), made on the *resolved*
path, so a symbolic link or `..` inside a root that points outside it is outside.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from app.errors import Forbidden


class DataRoots:
    """Resolved root folders; `contains` is a pure path comparison once the candidate is resolved."""

    def __init__(self, roots: Iterable[Path]):
        self.paths: tuple[Path, ...] = tuple(Path(r).expanduser().resolve() for r in roots)

    def contains(self, path: Path) -> bool:
        """True when `path`, with every link resolved, is a root or lies inside one."""
        real = Path(path).expanduser().resolve()
        return any(real == root or real.is_relative_to(root) for root in self.paths)

    def require(self, path: Path, what: str) -> Path:
        """`path` resolved, or Forbidden naming `what` (a dataset's name, never the server's folder layout)."""
        if not self.contains(path):
            raise Forbidden(f"{what} lies outside MEDVIEW_DATA_ROOTS; it is not read or served")
        return Path(path).expanduser().resolve()

    def __repr__(self) -> str:
        return f"DataRoots({[str(p) for p in self.paths]})"
