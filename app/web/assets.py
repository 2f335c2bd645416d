"""Static files under a content-versioned URL, cached by browsers for good.

Every page names its stylesheets and scripts through `url_for("static", ...)`, which resolves to
`/static/v-<hash>/…`: the hash is of the files' contents, so a URL never changes what it serves and its
responses say `Cache-Control: public, max-age=31536000, immutable`. Without it a browser revalidates each
stylesheet and module on every navigation while the files are new (its heuristic freshness is a tenth of their
age: right after a deploy or a fresh checkout, every item page cost a dozen 304 round trips). ES modules import
each other by relative paths, so the whole module graph inherits the version.

The plain `/static/…` mount stays for URLs written by hand (the API docs page) and answers a page left open across
an upgrade, whose `v-<old hash>/` prefix is dropped: those responses are revalidated (`no-cache`), never stored
for good under a URL whose content changed.
"""

from __future__ import annotations

import hashlib
import os
import re
from functools import cache
from pathlib import Path
from typing import Any

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
VERSION_SEGMENT = re.compile(r"v-[0-9a-f]{12}")


@cache
def content_version(directory: Path) -> str:
    """`v-` and 12 hex digits of a SHA-256 over every file's relative path and bytes (2 MB: a few ms), once per
    process: the files ship with the app (after editing one, restart the server)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
    return f"v-{digest.hexdigest()[:12]}"


class AssetFiles(StaticFiles):
    """StaticFiles with a Cache-Control header on each file; `drop_versions` serves `v-<hash>/x` as `x`."""

    def __init__(self, *, directory: Path, cache_control: str, drop_versions: bool = False, **kwargs: Any):
        super().__init__(directory=directory, **kwargs)
        self.cache_control = cache_control
        self.drop_versions = drop_versions

    def get_path(self, scope: Scope) -> str:
        path = super().get_path(scope)
        head, sep, rest = path.partition(os.sep)
        if self.drop_versions and sep and VERSION_SEGMENT.fullmatch(head):
            return rest
        return path

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = self.cache_control
        return response
