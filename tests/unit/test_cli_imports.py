"""The `medview` command starts lean: `import app.cli` (and an export's own modules) load none of the heavy
libraries that only some commands need, and the quick schema check reads the same heads alembic does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from alembic.script import ScriptDirectory

from app.db.migrate import alembic_config, plain_heads

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("fastapi", "uvicorn", "onnxruntime", "cv2", "torch", "sklearn", "pydicom", "highdicom", "nibabel",
         "alembic", "rich.progress", "pycocotools", "psycopg")


def _loaded(code: str) -> set[str]:
    """Top-level names of the HEAVY modules in sys.modules after running `code` in a fresh interpreter."""
    probe = (f"{code}\nimport json, sys\n"
             f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_import_app_cli_loads_no_heavy_module() -> None:
    assert _loaded("import app.cli\napp.cli.build_parser()") == set()


def test_a_table_export_path_loads_no_heavy_module() -> None:
    # what `medview export --format csv` imports beyond app.cli: the service, the table writer, the adapter
    code = ("import app.cli, app.export.service, app.export.csv_table, app.export.deeplesion_csv\n"
            "from app.datasets.registry import get_adapter\n"
            "get_adapter('deeplesion'); get_adapter('pcam')")
    assert _loaded(code) == set()


def test_a_first_command_on_a_new_sqlite_file_imports_no_alembic(tmp_path: Path) -> None:
    # the schema comes from app.db.fresh_schema's snapshot (tests/unit/test_fresh_schema.py), and the second
    # command finds it current by the quick check: alembic is imported by neither
    db = tmp_path / "new.db"
    code = (f"from app.db.migrate import ensure_schema\nensure_schema('sqlite:///{db}', 'sqlite')\n"
            f"ensure_schema('sqlite:///{db}', 'sqlite')")
    assert _loaded(code) == set()
    assert db.stat().st_size > 0


def test_a_quiet_ingest_imports_no_progress_bar(tmp_path: Path) -> None:
    code = (f"import os\nos.environ['MEDVIEW_DATABASE_URL'] = 'sqlite:///{tmp_path / 'q.db'}'\n"
            f"os.environ['MEDVIEW_DATA_DIR'] = '{tmp_path}'\nimport app.cli\n"
            f"assert app.cli.main(['ingest', '{tmp_path / 'missing'}', '--quiet']) == 2")
    assert _loaded(code) == set()


def test_plain_heads_are_alembics_heads() -> None:
    assert plain_heads() == set(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


def test_cyclic_gc_paused_nests_and_restores() -> None:
    import gc

    from app.datasets.bulk_tuning import cyclic_gc_paused

    assert gc.isenabled()
    with cyclic_gc_paused():
        assert not gc.isenabled()
        with cyclic_gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    try:
        with cyclic_gc_paused():
            raise RuntimeError("writer failed")
    except RuntimeError:
        pass
    assert gc.isenabled()
