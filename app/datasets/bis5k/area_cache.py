"""Mask areas remembered between ingests of the same folder, in the adapter's private work dir.

Measuring a mask means decoding it (~1 ms for a 600×500 binary PNG); a re-ingest of an unchanged
5,000-image BIS5k would repeat seconds of decoding to learn nothing. Entries are keyed by the mask's
path relative to the root and its size + mtime stamp, so a changed mask is measured again. The file
is written atomically (temp file + rename): two ingests racing lose at most one run's entries.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MaskMeasure:
    stamp: str  # "<bytes>:<mtime_ns>" of the mask file when measured
    width: int
    height: int
    mode: str
    pixels: int  # foreground pixels


class AreaCache:
    def __init__(self, work_dir: Path | None, root: Path):
        self.path = None
        if work_dir is not None:
            digest = hashlib.blake2b(str(root.resolve()).encode(), digest_size=8).hexdigest()
            self.path = work_dir / f"mask-areas-{digest}.json"
        self.entries: dict[str, MaskMeasure] = {}
        if self.path is not None and self.path.is_file():
            try:
                raw = json.loads(self.path.read_text())
                self.entries = {rel: MaskMeasure(*values) for rel, values in raw.items()}
            except (OSError, ValueError, TypeError) as exc:
                log.warning("ignoring unreadable mask-area cache %s: %s", self.path, exc)

    def get(self, rel: str, stamp: str) -> MaskMeasure | None:
        hit = self.entries.get(rel)
        return hit if hit is not None and hit.stamp == stamp else None

    def save(self, measures: dict[str, MaskMeasure]) -> None:
        """Replace the stored entries with `measures` (the masks of this scan)."""
        if self.path is None:
            return
        data = {rel: [m.stamp, m.width, m.height, m.mode, m.pixels] for rel, m in measures.items()}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".mask-areas-")
            with os.fdopen(fd, "w") as fh:
                json.dump(data, fh, separators=(",", ":"))
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("could not write the mask-area cache %s: %s", self.path, exc)
