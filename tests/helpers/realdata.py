"""Where the real samples are: ../shared/realdata next to the checkout, or MEDVIEW_REALDATA_DIR.

Only tests marked `realdata` read them (through the `realdata` fixture of tests/conftest.py); they are
skipped, with the reason, when the folder is absent. `MEDVIEW_REALDATA_DIR=/nonexistent` shows which tests
those are.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REALDATA = Path(os.environ.get("MEDVIEW_REALDATA_DIR") or REPO.parent / "shared" / "realdata")
